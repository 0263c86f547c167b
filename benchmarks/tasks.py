#!/usr/bin/env python3
"""Measure the seed tasks on the dev clips: interpolation, denoising, inpainting (docs/tasks.md).

Usage (from the repository root; each experiment is one encode, run them in parallel with --only)::

    python benchmarks/tasks.py --out tasks-out --only interp-nerv interp-dnerv
    python benchmarks/tasks.py --out tasks-out --report        # Markdown table of what has run

Experiments (names for --only):
    interp-{nerv,dnerv}           people_qcif_48f, every other frame held out (--holdout every:2)
    denoise-{sp,gauss}-{nerv,dnerv}  people_qcif_48f with salt-and-pepper (density 0.1) or Gaussian
                                  (sigma 20) noise, seed 0, scored against the clean clip
    filters                       the noisy inputs through a 3x3 median and a Gaussian filter
    inpaint-{nerv,dnerv}          carphone_pristine with the disperse mask, full-frame and in-hole PSNR

Each writes OUT/NAME.json: the encode's --json result (verify and task scores included)
and the exact command line that reproduces it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nervcodec.codec import EncodeConfig, encode  # noqa: E402
from nervcodec.io import read_video  # noqa: E402
from nervcodec.metrics.rgb import frames_to_rgb24  # noqa: E402
from nervcodec.metrics.tasks import mean_psnr_rgb  # noqa: E402
from nervcodec.tasks import apply_filter  # noqa: E402
from nervcodec.tasks.corrupt import corrupt_file  # noqa: E402

NOISES = {"sp": "saltpepper:0.1", "gauss": "gaussian:20"}


def experiments(data: str, out: str, bpp: float, epochs: int, inpaint_epochs: int) -> Dict[str, Dict]:
    people = os.path.join(data, "people_qcif_48f.y4m")
    carphone = os.path.join(data, "carphone_pristine.mp4")
    ex: Dict[str, Dict] = {}
    for model in ("nerv", "dnerv"):
        ex[f"interp-{model}"] = dict(src=people, cfg=dict(model=model, bpp=bpp, epochs=epochs, holdout="every:2"))
        for key, spec in NOISES.items():
            ex[f"denoise-{key}-{model}"] = dict(src=os.path.join(out, f"people_{key}.y4m"), noise=spec,
                                                clean=people, cfg=dict(model=model, bpp=bpp, epochs=epochs,
                                                                       reference=people))
        ex[f"inpaint-{model}"] = dict(src=carphone, cfg=dict(model=model, bpp=bpp, epochs=inpaint_epochs,
                                                             mask="disperse"))
    return ex


def noisy_input(out: str, key: str, clean: str) -> str:
    path = os.path.join(out, f"people_{key}.y4m")
    if not os.path.exists(path):
        report = corrupt_file(clean, path, NOISES[key], 0)
        with open(path + ".json", "w") as f:
            json.dump(report, f, indent=2)
    return path


def run_encode(name: str, e: Dict, out: str) -> None:
    if "noise" in e:
        noisy_input(out, name.split("-")[1], e["clean"])
    cfg = EncodeConfig(verify=True, force=True, **e["cfg"])
    nerv = os.path.join(out, f"{name}.nerv")
    t0 = time.time()
    res = encode([e["src"]], nerv, cfg, progress=False)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in e["cfg"].items())
    record = {"name": name, "result": res.to_dict(), "wall_seconds": time.time() - t0,
              "command": f"nervcodec encode {e['src']} {nerv} {flags} --verify --json"}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=2)
    print(f"{name}: done in {record['wall_seconds']:.0f} s", flush=True)


def run_filters(data: str, out: str) -> None:
    people = os.path.join(data, "people_qcif_48f.y4m")
    _, clean = read_video(people)
    ref = frames_to_rgb24(clean)
    rows = {}
    for key in NOISES:
        _, noisy = read_video(noisy_input(out, key, people))
        for name in ("noisy", "median3", "gaussian"):
            fr = noisy if name == "noisy" else apply_filter(noisy, name)
            rows[f"{key}-{name}"] = mean_psnr_rgb(ref, frames_to_rgb24(fr))
    with open(os.path.join(out, "filters.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print("filters:", rows, flush=True)


def report(out: str) -> str:
    def load(name: str):
        p = os.path.join(out, f"{name}.json")
        return json.load(open(p)) if os.path.exists(p) else None

    def task_rows(prefix: str, keys) -> List[str]:
        """One row per model of an experiment: bpp, then the named task scores."""
        rows = []
        for m in ("nerv", "dnerv"):
            r = load(f"{prefix}-{m}")
            if r:
                v, t = r["result"], r["result"]["verify"]["tasks"]
                rows.append(f"| {m} | {v['bpp']:.3f} | " + " | ".join(f"{t[k]:.2f}" for k in keys) + " |")
        return rows

    lines: List[str] = ["| interpolation (people, every:2) | bpp | seen | unseen | neighbour average (unseen) |",
                        "|---|---|---|---|---|"]
    lines += task_rows("interp", ("psnr_rgb_seen", "psnr_rgb_unseen", "psnr_rgb_unseen_neighbours"))
    filt = load("filters") or {}
    lines += ["", "| denoising (people, vs clean) | noise | PSNR-RGB | bpp |", "|---|---|---|---|"]
    for key, spec in NOISES.items():
        for name in ("noisy", "median3", "gaussian"):
            if f"{key}-{name}" in filt:
                label = "noisy input" if name == "noisy" else f"{name} filter"
                lines.append(f"| {label} | {spec} | {filt[f'{key}-{name}']:.2f} | - |")
        for m in ("nerv", "dnerv"):
            r = load(f"denoise-{key}-{m}")
            if r:
                v = r["result"]
                lines.append(f"| {m} | {spec} | {v['verify']['psnr_rgb']:.2f} | {v['bpp']:.3f} |")
    lines += ["", "| inpainting (carphone, disperse) | bpp | full frame | holes | outside holes |",
              "|---|---|---|---|---|"]
    lines += task_rows("inpaint", ("psnr_rgb", "psnr_rgb_holes", "psnr_rgb_visible"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--out", default="tasks-out")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--inpaint-epochs", type=int, default=100)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.report:
        print(report(a.out))
        return
    ex = experiments(a.data, a.out, a.bpp, a.epochs, a.inpaint_epochs)
    for name in a.only or [*ex, "filters"]:
        if name == "filters":
            run_filters(a.data, a.out)
        else:
            run_encode(name, ex[name], a.out)


if __name__ == "__main__":
    main()
