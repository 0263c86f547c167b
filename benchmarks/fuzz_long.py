"""Long fuzz run of the .nerv readers (the bounded version runs in CI as tests/test_fuzz.py).

    python benchmarks/fuzz_long.py --count 12000 [--seed 0] [--kinds raw,header,json,section] [--json out.json]

Makes ``--count`` mutants of small valid files (NeRV 4:2:0, NeRV gray, D-NeRV),
spread evenly over the mutation kinds and seed files, and runs ``info`` and
``decode`` on each under a data-segment limit.  Prints the outcome counts and every
unclean failure (an exception other than NervCodecError, a leftover file, a
MemoryError from the limit, or a mutant slower than ``--slow`` seconds) with the
numbers that reproduce it (seed file, kind, mutant index).
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from test_fuzz import GENERATORS, Unclean, check_mutant, make_seed_files, memory_limit  # noqa: E402


def mutant(seeds, kinds, base_seed, i):
    name = sorted(seeds)[i % len(seeds)]
    kind = kinds[(i // len(seeds)) % len(kinds)]
    rnd = random.Random(f"{base_seed}:{i}")
    return name, kind, GENERATORS[kind](seeds[name], rnd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=12000)
    ap.add_argument("--seed", default="0")
    ap.add_argument("--kinds", default=",".join(GENERATORS))
    ap.add_argument("--start", type=int, default=0, help="first mutant index (to split a run)")
    ap.add_argument("--slow", type=float, default=20.0, help="seconds after which a mutant counts as a hang")
    ap.add_argument("--only", type=int, default=None, help="run only mutant INDEX, with the traceback")
    ap.add_argument("--json", default=None, help="write the summary here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(prefix="nerv-fuzz-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        (tmp / "seeds").mkdir()
        seeds = make_seed_files(tmp / "seeds")
        print(f"seed files: {', '.join(f'{k} ({len(v)} B)' for k, v in sorted(seeds.items()))} "
              f"in {time.monotonic() - t0:.1f} s", flush=True)
        indices = [args.only] if args.only is not None else range(args.start, args.start + args.count)
        outcomes = collections.Counter()
        per_kind = collections.defaultdict(collections.Counter)
        unclean, slowest = [], (0.0, None)
        t0 = time.monotonic()
        for n, i in enumerate(indices):
            name, kind, data = mutant(seeds, kinds, args.seed, i)
            t = time.monotonic()
            try:
                with memory_limit():
                    res = check_mutant(data, tmp / "work")
                key = f"info={res['info']} decode={res['decode']}"
            except Unclean as exc:
                key = "UNCLEAN"
                unclean.append({"index": i, "seed_file": name, "kind": kind, "error": str(exc)[:300]})
                print(f"UNCLEAN #{i} ({name}, {kind}): {str(exc)[:300]}", flush=True)
                if args.only is not None:
                    traceback.print_exc()
            dt = time.monotonic() - t
            if dt > slowest[0]:
                slowest = (dt, i)
            if dt > args.slow:
                unclean.append({"index": i, "seed_file": name, "kind": kind, "error": f"slow: {dt:.1f} s"})
                print(f"SLOW #{i} ({name}, {kind}): {dt:.1f} s", flush=True)
            outcomes[key] += 1
            per_kind[kind][key] += 1
            if (n + 1) % 500 == 0:
                print(f"{n + 1} mutants, {time.monotonic() - t0:.0f} s, {len(unclean)} unclean", flush=True)
        seconds = time.monotonic() - t0
    summary = {"mutants": len(indices), "seconds": round(seconds, 1), "unclean": unclean,
               "slowest_seconds": round(slowest[0], 2), "slowest_index": slowest[1],
               "outcomes": dict(outcomes.most_common()),
               "per_kind": {k: dict(v.most_common()) for k, v in per_kind.items()}}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 1 if unclean else 0


if __name__ == "__main__":
    sys.exit(main())
