#!/usr/bin/env python3
"""PSNR-RGB against encode wall-clock seconds: effort presets of this tree against an older tree's epochs.

Every point is one ``nervcodec encode CLIP --bpp B --seed S --device cpu --verify --json`` run in a
subprocess, one at a time (timings need the machine to themselves), with ``--preset P`` for this
tree or ``--epochs N`` for the tree given by ``--old-tree`` (a ``git worktree`` of the old commit,
run with PYTHONPATH pointing at it).  The rate is the file on disk and the PSNR is the decoded
file's (``--verify``).  Results go to OUT/points.jsonl (a point already there is not run again, so
an interrupted run resumes) and OUT/effort.png:

    git worktree add /tmp/old 82b131b
    python benchmarks/effort.py --clip ../shared/data/people_qcif_48f.y4m --bpp 0.5 \\
        --presets ultrafast fast medium --old-tree /tmp/old --old-epochs 150 300 --out effort-people
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _key(p: Dict) -> str:
    return f"{p['tree']}|{p['clip']}|{p['bpp_target']:g}|{p['how']}"


def run_point(tree: str, label: str, clip: str, bpp: float, how: List[str], seed: int, out_dir: str) -> Dict:
    """One encode: its --json result plus the wall-clock seconds of the whole command."""
    name = f"{label}_{os.path.splitext(os.path.basename(clip))[0]}_{bpp:g}_{'_'.join(how).strip('-')}.nerv"
    cmd = [sys.executable, "-m", "nervcodec", "encode", clip, os.path.join(out_dir, name), "--bpp", str(bpp),
           "--seed", str(seed), "--device", "cpu", "--verify", "--json", "--force", *how]
    env = dict(os.environ, PYTHONPATH=tree)
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"effort.py: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    res = json.loads(done.stdout)
    return {"tree": label, "clip": os.path.basename(clip), "bpp_target": bpp, "bpp": res["bpp"],
            "how": " ".join(how), "psnr_rgb": res["verify"]["psnr_rgb"], "psnr_yuv": res["verify"]["psnr_yuv"],
            "wall_seconds": wall, "encode_seconds": res["seconds"], "fit_seconds": res["fit_seconds"],
            "params": res["params"], "steps": res.get("steps"), "epochs": res.get("epochs"), "seed": seed,
            "command": " ".join(cmd[1:])}


def load(path: str) -> List[Dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot(points: List[Dict], path: str) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:   # pragma: no cover - matplotlib is a dev dependency
        return None
    clips = sorted({(p["clip"], p["bpp_target"]) for p in points})
    fig, axes = plt.subplots(1, len(clips), figsize=(5.5 * len(clips), 4.2), squeeze=False)
    for ax, (clip, bpp) in zip(axes[0], clips):
        for tree, marker in (("old", "s"), ("new", "o")):
            pts = sorted((p for p in points if p["clip"] == clip and p["bpp_target"] == bpp and p["tree"] == tree),
                         key=lambda p: p["encode_seconds"])
            if not pts:
                continue
            ax.plot([p["encode_seconds"] for p in pts], [p["psnr_rgb"] for p in pts], marker=marker,
                    label=f"{tree} ({'epochs' if tree == 'old' else 'effort presets'})")
            for p in pts:
                ax.annotate(p["how"].replace("--preset ", "").replace("--epochs ", "") +
                            (" ep" if tree == "old" else ""), (p["encode_seconds"], p["psnr_rgb"]),
                            textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_title(f"{clip} at {bpp:g} bpp (D-NeRV, 2-core CPU)")
        ax.set_xlabel("encode seconds (wall-clock, without --verify)")
        ax.set_ylabel("PSNR-RGB of the decoded file (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--bpp", type=float, required=True)
    ap.add_argument("--presets", nargs="*", default=[], help="effort presets of this tree")
    ap.add_argument("--old-tree", default=None, help="checkout of the old commit (git worktree)")
    ap.add_argument("--old-epochs", type=int, nargs="*", default=[], help="--epochs of the old tree's points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "points.jsonl")
    have = {_key(p) for p in load(path)}
    jobs = [("new", ROOT, ["--preset", p]) for p in a.presets]
    if a.old_epochs and not a.old_tree:
        ap.error("--old-epochs needs --old-tree")
    jobs += [("old", a.old_tree, ["--epochs", str(e)]) for e in a.old_epochs]
    for label, tree, how in jobs:
        key = _key({"tree": label, "clip": os.path.basename(a.clip), "bpp_target": a.bpp, "how": " ".join(how)})
        if key in have:
            continue
        p = run_point(os.path.abspath(tree), label, a.clip, a.bpp, how, a.seed, a.out)
        with open(path, "a") as f:
            f.write(json.dumps(p) + "\n")
        print(f"{label} {p['clip']} {p['how']}: {p['bpp']:.4f} bpp, PSNR-RGB {p['psnr_rgb']:.2f} dB, "
              f"{p['encode_seconds']:.0f} s encode", flush=True)
    out = plot(load(path), os.path.join(a.out, "effort.png"))
    if out:
        print(f"plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
