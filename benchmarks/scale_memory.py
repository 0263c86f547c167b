#!/usr/bin/env python3
"""Peak resident memory per rank of a data-parallel encode against collection size (docs/scale.md).

Makes N small synthetic clips (176x144, 8 frames, 4:2:0: 304 KiB of raw frames each), then
runs ``torchrun --standalone --nproc-per-node 2 -m nervcodec encode --inputs-from LIST`` on
them, with and without ``--cache-dir``, and reads each rank's peak RSS from the encode's
``--json`` (``peak_rss_mib``, gathered from every rank after the fit).

Usage::

    python benchmarks/scale_memory.py --counts 4 40 400 --out scale-out
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nervcodec.io import write_video  # noqa: E402
from nervcodec.io.video import Frames, VideoInfo, pixel_format  # noqa: E402


def make_clips(folder: str, count: int, width: int = 176, height: int = 144, frames: int = 8) -> str:
    os.makedirs(folder, exist_ok=True)
    fmt = pixel_format("yuv420p")
    names = []
    for k in range(count):
        path = os.path.join(folder, f"clip{k:04d}.y4m")
        names.append(os.path.basename(path))
        if os.path.exists(path):
            continue
        rng = np.random.default_rng(k)
        fx, fy, speed = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3), rng.uniform(0.5, 3)
        planes = []
        for p, (h, w) in enumerate(fmt.plane_shapes(width, height)):
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
            t = np.arange(frames, dtype=np.float64)[:, None, None]
            s = width / w
            base = 128 + 80 * np.sin(fx * (xx * s - speed * t) + p) * np.cos(fy * yy * s)
            planes.append(np.clip(np.rint(base), 0, 255).astype(np.uint8))
        write_video(path, VideoInfo(width, height, fmt, Fraction(25), frames, name=f"clip{k:04d}"),
                    Frames(tuple(planes), fmt))
    listing = os.path.join(folder, f"list{count}.txt")
    with open(listing, "w") as f:
        f.write("\n".join(names[:count]) + "\n")
    return listing


def run(listing: str, out: str, cache: str | None, model: str, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
           "nervcodec", "encode", "--inputs-from", listing, out, "--model", model, "--params", "20000",
           "--epochs", str(epochs), "--batch", "8", "--device", "cpu", "--force", "--quant-bits", "8", "--json",
           "-q"] + (["--keyframe-quality", "30"] if model == "dnerv" else []) + (["--cache-dir", cache] if cache else [])
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    d = json.loads(res.stdout)
    return {"rss": d["peak_rss_mib"], "psnr": d["psnr"], "bytes": d["bytes"], "seconds": time.time() - t0,
            "command": " ".join(cmd[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", type=int, nargs="+", default=[4, 40, 400])
    ap.add_argument("--out", default="scale-out")
    ap.add_argument("--model", default="nerv")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=["memory", "cache"])
    a = ap.parse_args()
    clips = os.path.join(a.out, "clips")
    rows = []
    for n in a.counts:
        listing = make_clips(clips, n)
        for mode in a.modes:
            r = run(listing, os.path.join(a.out, f"{a.model}_{n}_{mode}.nerv"),
                    os.path.join(a.out, "cache") if mode == "cache" else None, a.model, a.epochs)
            rows.append({"clips": n, "mode": mode, "model": a.model, **r})
            print(f"{n:4d} clips, {mode:6s}: peak RSS per rank {', '.join(f'{x:.0f}' for x in r['rss'])} MiB, "
                  f"PSNR {r['psnr']:.2f} dB, {r['seconds']:.0f} s", flush=True)
    with open(os.path.join(a.out, f"scale_{a.model}.json"), "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
