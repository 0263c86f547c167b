#!/usr/bin/env python3
"""Seconds per training step of the fitting loop's inner work, by memory format and thread count.

One step = gather the batch, forward, loss, backward, Adam; the same seeded model and data for
every setting.  Used to choose the default memory format on the CPU (``FitConfig.channels_last``)
and, with ``--compile``, to price torch.compile on the CPU (its compile seconds and s/step):

    python benchmarks/step_time.py CLIP [--model dnerv|nerv] [--params 64000] [--threads 1 2] [--steps 12]
                                        [--compile]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from nervcodec.fit.fit import batch_loss  # noqa: E402
from speed import build  # noqa: E402


def seconds_per_step(clip: str, model_name: str, params: int, threads: int, nhwc: bool, steps: int,
                     compiled: bool = False) -> tuple:
    """(seconds per step, seconds of the warm-up steps: with ``compiled`` the compilation's cost)."""
    torch.set_num_threads(threads)
    _, _, spec, cfg, data, _ = build(clip, model_name, params, None, 8)
    torch.manual_seed(0)
    model = spec.cls(cfg)
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    idx = torch.arange(min(spec.batch, data.num_items))
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        b = data.batch(idx)
        out = forward(b.t, b.keyframes_float(slice(None)))
        loss, _ = batch_loss(out, b, slice(None), "l2")
        opt.zero_grad()
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(3):   # warm-up (oneDNN primitive caches; compilation)
        step()
    t1 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t1) / steps, t1 - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--model", default="dnerv", choices=["dnerv", "nerv"])
    ap.add_argument("--params", type=int, default=64000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd channels-last steps")
    a = ap.parse_args()
    for th in a.threads:
        base, _ = seconds_per_step(a.clip, a.model, a.params, th, False, a.steps)
        nhwc, _ = seconds_per_step(a.clip, a.model, a.params, th, True, a.steps)
        print(f"{a.model} {a.params} params, {th} thread(s): NCHW {base:.3f} s/step, channels-last {nhwc:.3f} s/step "
              f"({base / nhwc:.2f}x)", flush=True)
        if a.compile:
            comp, warm = seconds_per_step(a.clip, a.model, a.params, th, True, a.steps, compiled=True)
            print(f"  torch.compile, channels-last: {comp:.3f} s/step ({nhwc / comp:.2f}x of eager), "
                  f"first 3 steps {warm:.1f} s (compilation included)", flush=True)


if __name__ == "__main__":
    main()
