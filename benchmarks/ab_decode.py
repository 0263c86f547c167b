"""Two versions of the decoder side by side, in one process: an old source tree against this one.

Timings of one version taken after another's moved by 20-40 % on this project's shared 2-core CPU,
more than most decoder changes; calls alternating in one process see the same machine.  The old
tree's ``nervcodec`` package (a checkout, or ``git archive REV nervcodec | tar -x -C DIR``) is copied
into a temporary folder as the package ``nervcodec_ab_old``: the package imports itself only through
relative imports, so both versions load side by side.

For every file, ``--rounds`` times (after one untimed warm-up): the old version decodes the whole file
to y4m, then the new one; each decode's wall time, and the time spent inside the model's forward calls
(the synthesis), are recorded.  The report gives best and median of both, and how many bytes of the
two y4m outputs differ (and by how much at most): the decoders' agreement.

    python benchmarks/ab_decode.py --old DIR FILE.nerv [FILE.nerv ...] [--rounds 5] [--json]

(the files must be decodable by both versions).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np

OLD_NAME = "nervcodec_ab_old"


@contextlib.contextmanager
def old_package(tree: Path, into: Path):
    """The ``nervcodec`` package of the source tree ``tree`` (or ``tree`` itself when it is the package),
    copied under ``into`` and imported as ``OLD_NAME`` for the block (then forgotten)."""
    pkg = tree / "nervcodec" if (tree / "nervcodec" / "__init__.py").exists() else tree
    if not (pkg / "__init__.py").exists():
        raise SystemExit(f"no nervcodec package in {tree}")
    shutil.copytree(pkg, into / OLD_NAME, ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(into))
    try:
        yield importlib.import_module(OLD_NAME)
    finally:
        sys.path.remove(str(into))
        for name in [m for m in sys.modules if m == OLD_NAME or m.startswith(OLD_NAME + ".")]:
            del sys.modules[name]


@contextlib.contextmanager
def forward_clock(package) -> Iterator[List[float]]:
    """Seconds spent inside every model class's ``forward`` of ``package`` while the block runs (one total
    per block, appended to the yielded list)."""
    base = importlib.import_module(f"{package.__name__}.model.base").VideoModel
    importlib.import_module(f"{package.__name__}.model")          # every built-in model registered
    spent = [0.0]
    depth = [0]         # a forward that calls its parent's counts once
    patched = []

    def classes(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from classes(sub)

    for cls in set(classes(base)):
        if "forward" in vars(cls):
            orig = vars(cls)["forward"]

            def timed(self, *a, _orig=orig, **k):
                start = time.perf_counter()
                depth[0] += 1
                try:
                    return _orig(self, *a, **k)
                finally:
                    depth[0] -= 1
                    if not depth[0]:
                        spent[0] += time.perf_counter() - start
            patched.append((cls, orig))
            cls.forward = timed
    try:
        yield spent
    finally:
        for cls, orig in patched:
            cls.forward = orig


def compare(path: str, decoders: Dict[str, tuple], rounds: int, workdir: Path) -> dict:
    """Alternating decodes of ``path`` by each of ``decoders`` (label -> (decode function, package))."""
    times: Dict[str, List[tuple]] = {label: [] for label in decoders}
    outs = {label: workdir / f"{label}.y4m" for label in decoders}
    for r in range(rounds + 1):
        for label, (decode, package) in decoders.items():
            with forward_clock(package) as spent:
                start = time.perf_counter()
                decode(path, outs[label], force=True)
                wall = time.perf_counter() - start
            if r:
                times[label].append((wall, spent[0]))
    a, b = (np.fromfile(outs[label], np.uint8) for label in decoders)
    same_size = a.size == b.size
    report = {"file": path, "bytes": int(a.size), "same_size": bool(same_size),
              "bytes_differing": int((a != b).sum()) if same_size else None,
              "max_difference": int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) if same_size and a.size else 0}
    for label, runs in times.items():
        walls, synth = [w for w, _ in runs], [s for _, s in runs]
        report[label] = {"best_s": min(walls), "median_s": statistics.median(walls),
                         "synthesis_best_s": min(synth), "synthesis_median_s": statistics.median(synth),
                         "runs_s": [round(w, 4) for w in walls]}
    return report


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--old", required=True, type=Path, help="the old source tree (or its nervcodec package)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    import nervcodec
    from nervcodec.alloc import keep_freed_memory
    keep_freed_memory()     # as the CLI does (a process-wide allocator setting: both versions share it)
    with tempfile.TemporaryDirectory() as tmp, old_package(args.old.resolve(), Path(tmp)) as old:
        decoders: Dict[str, tuple] = {
            "old": (importlib.import_module(f"{OLD_NAME}.codec.decode").decode, old),
            "new": (importlib.import_module("nervcodec.codec.decode").decode, nervcodec)}
        reports = [compare(f, decoders, args.rounds, Path(tmp)) for f in args.files]
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        for rep in reports:
            print(f"{rep['file']}: {rep['bytes_differing']} of {rep['bytes']} bytes differ "
                  f"(at most by {rep['max_difference']})")
            for label in decoders:
                r = rep[label]
                print(f"  {label}: whole {r['best_s']:.3f} / {r['median_s']:.3f} s, synthesis "
                      f"{r['synthesis_best_s']:.3f} / {r['synthesis_median_s']:.3f} s (best / median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
