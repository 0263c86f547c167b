#!/usr/bin/env python3
"""Compare two nervcodec rate-distortion curves (e.g. an old commit and the new code) clip by clip.

Usage (from the repository root)::

    python benchmarks/compare_rd.py --old OLD/results.json --new NEW/results.json [--metric psnr_rgb]
        [--markdown] [--plot before_after.png --old-label 82b131b --new-label "format 2"]

Each ``--old`` / ``--new`` (repeatable: one per clip's run) is a ``nervcodec bench --out`` result.  For every clip in both, it prints
the nervcodec points of each (bpp from the file size, the metric) and the BD-rate and
BD-quality of NEW against OLD over the curves' overlap (the ``bjontegaard`` package,
Akima), with the overlap, as ``bench`` reports them against baselines.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, ROOT)

from nervcodec.metrics.bd import bd_delta  # noqa: E402


def points(paths: List[str], metric: str, codec: str = "nervcodec") -> Dict[str, List[Tuple[float, float]]]:
    """(bpp, metric) of ``codec`` per clip, from one or more results.json files."""
    out: Dict[str, List[Tuple[float, float]]] = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for p in data["points"]:
            if p["codec"] == codec and p.get(metric) is not None:
                out.setdefault(p["clip"], []).append((float(p["bpp"]), float(p[metric])))
    return {k: sorted(v) for k, v in out.items()}


def fmt_points(points: List[Tuple[float, float]]) -> str:
    return ", ".join(f"{r:.3f} -> {q:.2f}" for r, q in points)


def delta(anchor: List[Tuple[float, float]], test: List[Tuple[float, float]]) -> dict:
    """BD-rate and BD-quality of ``test`` against ``anchor`` (bpp, quality) points, with the overlap."""
    bd = bd_delta([r for r, _ in anchor], [q for _, q in anchor], [r for r, _ in test], [q for _, q in test])
    return {"bd_quality": bd.bd_quality, "bd_rate": bd.bd_rate, "overlap_quality": bd.overlap_quality,
            "overlap_rate": bd.overlap_rate, "notes": list(bd.notes)}


def style_panel(ax, clip: str, metric: str) -> None:
    """One clip's panel of an RD plot: log rate, labelled axes, grid and legend."""
    ax.set_xscale("log")
    ax.set_title(clip)
    ax.set_xlabel("bpp (file size)")
    ax.set_ylabel(f"{metric} (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def compare(old_paths: List[str], new_paths: List[str], metric: str) -> List[dict]:
    old, new = points(old_paths, metric), points(new_paths, metric)
    return [{"clip": clip, "old": old[clip], "new": new[clip], **delta(old[clip], new[clip])}
            for clip in sorted(set(old) & set(new))]


def plot(old_paths: List[str], new_paths: List[str], metric: str, out: str, old_label: str, new_label: str) -> None:
    """One panel per clip: the old and new nervcodec curves, and the new runs' HEVC anchor."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    old, new = points(old_paths, metric), points(new_paths, metric)
    anchors = points(new_paths, metric, codec="hevc")
    clips = sorted(set(old) & set(new))
    fig, axes = plt.subplots(1, len(clips), figsize=(5 * len(clips), 4), squeeze=False)
    for ax, clip in zip(axes[0], clips):
        for pts, label, style in ((old[clip], f"nervcodec {old_label}", "o--"),
                                  (new[clip], f"nervcodec {new_label}", "o-"),
                                  (sorted(anchors.get(clip, [])), "HEVC medium, bf 0", "s:")):
            if pts:
                ax.plot([r for r, _ in pts], [q for _, q in pts], style, label=label)
        style_panel(ax, clip, metric)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", action="append", required=True, help="results.json of the old code (repeatable)")
    ap.add_argument("--new", action="append", required=True, help="results.json of the new code (repeatable)")
    ap.add_argument("--metric", default="psnr_rgb")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--plot", help="also draw the curves into this image")
    ap.add_argument("--old-label", default="old")
    ap.add_argument("--new-label", default="new")
    args = ap.parse_args(argv)
    rows = compare(args.old, args.new, args.metric)
    if args.plot:
        plot(args.old, args.new, args.metric, args.plot, args.old_label, args.new_label)
    if args.markdown:
        print(f"| clip | old (bpp -> {args.metric}) | new (bpp -> {args.metric}) | BD-{args.metric} | BD-rate |")
        print("|---|---|---|--:|--:|")
    for r in rows:
        q = "n/a" if r["bd_quality"] is None else f"{r['bd_quality']:+.2f} dB"
        rate = "n/a" if r["bd_rate"] is None else f"{r['bd_rate']:+.1f} %"
        ov = f"(overlap {100 * r['overlap_rate']:.0f}% of log-rate, {100 * r['overlap_quality']:.0f}% of quality)"
        if args.markdown:
            print(f"| {r['clip']} | {fmt_points(r['old'])} | {fmt_points(r['new'])} | {q} | {rate} {ov} |")
        else:
            print(f"{r['clip']}:\n  old {fmt_points(r['old'])}\n  new {fmt_points(r['new'])}\n  BD-{args.metric} {q}, "
                  f"BD-rate {rate} {ov}" + (f"; {'; '.join(r['notes'])}" if r["notes"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
