#!/usr/bin/env python3
"""Several nervcodec models' rate-distortion curves side by side, with H.264 and HEVC, clip by clip.

Usage (from the repository root)::

    python benchmarks/rd_models.py --run "latent-grid-kf=GRID/results.json" --run "D-NeRV=DNERV/results.json" \\
        --run "NeRV=NERV/results.json" --reference D-NeRV [--metric psnr_rgb] [--plot models.png] [--markdown]

Each ``--run LABEL=PATH`` (repeatable) is a ``nervcodec bench --out`` result whose nervcodec points make
the curve LABEL.  One label may be given several files: one per clip, or several for one clip, the same
bench repeated with other seeds.  Repeated runs make one curve, their mean: the k-th lowest rate of every
run together (the geometric mean of their bpp, the mean of their quality), so every run must have the same
number of points; the row also gives each run's delta against the reference and the spread of the runs'
quality at each rate.  A fitted codec's curve moves with its seed (D-NeRV's carphone curves at seeds 0, 1
and 2 were up to 0.6 dB apart, docs/benchmarks.md), and a comparison with one seed of each can say more
about the seeds than about the models.  The anchors (x264 and x265
at the bench's CRFs) are those of the first run that has them for a clip: runs of one machine and one
ffmpeg code the same anchors the same way.  For every clip it prints each curve's points and its
BD-rate and BD-quality (the ``bjontegaard`` package, Akima, over the curves' overlap, as ``bench``
reports them) against each anchor and against the ``--reference`` curve.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (ROOT, HERE):   # run as a script from a checkout: the package and compare_rd beside this file
    if path not in sys.path:
        sys.path.insert(0, path)

from compare_rd import delta, fmt_points, points, style_panel  # noqa: E402

ANCHORS = (("hevc", "x265 medium"), ("h264", "x264 medium"))
Curve = List[Tuple[float, float]]


def parse_runs(specs: Sequence[str]) -> Dict[str, List[str]]:
    """``LABEL=PATH`` strings -> {label: [paths]}, in the order the labels first appear."""
    runs: Dict[str, List[str]] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"--run wants LABEL=PATH, got {spec!r}")
        runs.setdefault(label, []).append(path)
    return runs


def mean_curve(runs: Sequence[Curve], what: str = "") -> Curve:
    """The mean of repeated runs' curves: their k-th lowest rates together, the geometric mean of the bpp and
    the mean of the quality (one run: itself)."""
    sizes = {len(pts) for pts in runs}
    if len(sizes) != 1:
        raise SystemExit(f"{what}: repeated runs need the same number of points, got {sorted(len(p) for p in runs)}")
    return [(math.exp(sum(math.log(pts[k][0]) for pts in runs) / len(runs)), sum(pts[k][1] for pts in runs) / len(runs))
            for k in range(sizes.pop())]


def curves(runs: Dict[str, List[str]], metric: str) -> Tuple[Dict[str, Dict[str, List[Curve]]], Dict[str, Dict[str, Curve]]]:
    """({clip: {label: [each run's nervcodec points]}}, {clip: {anchor codec: points}})."""
    models: Dict[str, Dict[str, List[Curve]]] = {}
    anchors: Dict[str, Dict[str, Curve]] = {}
    for label, paths in runs.items():
        for path in paths:      # file by file: repeated runs of a bench each carry the same anchors
            for clip, pts in points([path], metric).items():
                models.setdefault(clip, {}).setdefault(label, []).append(pts)
            for codec, _ in ANCHORS:
                for clip, pts in points([path], metric, codec=codec).items():
                    anchors.setdefault(clip, {}).setdefault(codec, pts)
    return models, anchors


def table(runs: Dict[str, List[str]], metric: str, reference: Optional[str]) -> List[dict]:
    """One row per (clip, curve): its points and its deltas against each anchor and the reference curve."""
    models, anchors = curves(runs, metric)
    rows = []
    for clip in sorted(models):
        means = {label: mean_curve(each, f"{label} on {clip}") for label, each in models[clip].items()}
        ref = means.get(reference) if reference else None
        for codec, name in ANCHORS:
            if codec in anchors.get(clip, {}):
                rows.append({"clip": clip, "curve": name, "points": anchors[clip][codec], "against": {}, "runs": 1})
        for label in runs:
            if label not in means:
                continue
            pts, each = means[label], models[clip][label]
            against = {name: delta(anchors[clip][codec], pts) for codec, name in ANCHORS
                       if codec in anchors.get(clip, {})}
            row = {"clip": clip, "curve": label, "points": pts, "against": against, "runs": len(each)}
            if ref is not None and label != reference:
                against[reference] = delta(ref, pts)
                if len(each) > 1 or len(models[clip][reference]) > 1:   # every pairing of a run with a reference run
                    row["pairs"] = [delta(r, e) for e in each for r in models[clip][reference]]
            if len(each) > 1:   # how far apart the runs' qualities are at each rate
                row["spread"] = [max(p[k][1] for p in each) - min(p[k][1] for p in each) for k in range(len(pts))]
            rows.append(row)
    return rows


def _fmt(d: dict) -> str:
    if d["bd_rate"] is None and d["bd_quality"] is None:
        return "no overlap"
    rate = "n/a" if d["bd_rate"] is None else f"{d['bd_rate']:+.1f} %"
    q = "n/a" if d["bd_quality"] is None else f"{d['bd_quality']:+.2f} dB"
    return f"{rate}, {q} ({100 * d['overlap_rate']:.0f} / {100 * d['overlap_quality']:.0f} %)"


def _name(r: dict) -> str:
    return r["curve"] + (f" (mean of {r['runs']} runs)" if r["runs"] > 1 else "")


def _points(r: dict) -> str:
    spread = r.get("spread")
    return fmt_points(r["points"]) + (f"; the runs within {max(spread):.2f} dB of each other" if spread else "")


def _pairs(r: dict) -> str:
    """Each run against each reference run: the range of their BD-rates (BD-quality where no rate overlaps)."""
    pairs = r.get("pairs")
    if not pairs:
        return ""
    rates = [d["bd_rate"] for d in pairs if d["bd_rate"] is not None]
    if rates:
        return f"; run against run {min(rates):+.1f} to {max(rates):+.1f} %"
    qs = [d["bd_quality"] for d in pairs if d["bd_quality"] is not None]
    return f"; run against run {min(qs):+.2f} to {max(qs):+.2f} dB" if qs else ""


def markdown(rows: List[dict], metric: str, reference: Optional[str]) -> str:
    cols = [name for _, name in ANCHORS] + ([reference] if reference else [])
    out = [f"| clip | curve | bpp -> {metric} | " + " | ".join(f"against {c}" for c in cols) + " |",
           "|---|---|---|" + "--:|" * len(cols)]
    for r in rows:
        cells = [_fmt(r["against"][c]) + (_pairs(r) if c == reference else "") if c in r["against"] else ""
                 for c in cols]
        out.append(f"| {r['clip']} | {_name(r)} | {_points(r)} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("(BD-rate, BD-quality, then the overlap in log-rate / quality of the two curves the delta is taken "
               "over: negative BD-rate is fewer bits for the same quality.)")
    return "\n".join(out)


def plot(rows: List[dict], metric: str, out: str) -> None:
    """One panel per clip, every curve of the table."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    clips = list(dict.fromkeys(r["clip"] for r in rows))
    fig, axes = plt.subplots(1, len(clips), figsize=(5.5 * len(clips), 4.2), squeeze=False)
    for ax, clip in zip(axes[0], clips):
        for r in (r for r in rows if r["clip"] == clip):
            anchor = r["curve"] in {name for _, name in ANCHORS}
            ax.plot([b for b, _ in r["points"]], [q for _, q in r["points"]], "s:" if anchor else "o-",
                    label=r["curve"])
        style_panel(ax, clip, metric)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="LABEL=results.json (repeatable)")
    ap.add_argument("--reference", help="a LABEL every other curve is also compared with")
    ap.add_argument("--metric", default="psnr_rgb")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table instead of plain lines")
    ap.add_argument("--plot", help="also draw the curves into this image")
    args = ap.parse_args(argv)
    runs = parse_runs(args.run)
    if args.reference is not None and args.reference not in runs:
        raise SystemExit(f"--reference {args.reference} is not one of the runs' labels ({', '.join(runs)})")
    rows = table(runs, args.metric, args.reference)
    if args.plot:
        plot(rows, args.metric, args.plot)
    if args.markdown:
        print(markdown(rows, args.metric, args.reference))
    else:
        for r in rows:
            extra = "; ".join(f"against {k}: {_fmt(v)}" + (_pairs(r) if k == args.reference else "")
                              for k, v in r["against"].items())
            print(f"{r['clip']} {_name(r)}: {_points(r)}" + (f"\n  {extra}" if extra else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
