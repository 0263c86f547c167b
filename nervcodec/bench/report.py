"""Output of a benchmark: terminal table, results.json, results.csv, RD plots.

The JSON is the one source of truth: :func:`to_json` builds it, ``--json``
prints it, ``results.json`` stores it, and the table and CSV show the same
numbers.  Plots are drawn with matplotlib's Agg canvas directly (no pyplot),
so they work without a display and leave no global state behind.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Dict, List, Optional, Sequence

from ..errors import OutputError
from ..metrics.bd import BDResult, ms_ssim_to_db
from .results import NERV_CODEC, POINT_FIELDS, BenchResult, ClipResult, Point

__all__ = ["to_json", "format_table", "format_markdown", "write_csv", "write_json", "plot_rd", "write_outputs",
           "bd_json", "PLOT_FILES"]

#: Plot file per metric (PSNR-RGB and MS-SSIM against bpp).
PLOT_FILES: Dict[str, str] = {"psnr_rgb": "rd_psnr_rgb.png", "ms_ssim": "rd_ms_ssim.png"}

_METRIC_LABELS = {"psnr_rgb": "PSNR-RGB (dB)", "psnr_yuv": "PSNR-YUV 6:1:1 (dB)", "ms_ssim": "MS-SSIM (dB)"}
_QUALITY_UNITS = {"psnr_rgb": "dB", "psnr_yuv": "dB", "ms_ssim": "dB of -10*log10(1-MS-SSIM)"}
_CODEC_ORDER = {"h264": 0, "hevc": 1, NERV_CODEC: 2}
_STYLE = {"h264": ("tab:blue", "s"), "hevc": ("tab:orange", "^"), NERV_CODEC: ("tab:green", "o")}


# ---------------------------------------------------------------------- JSON


def _bd_entry(metric: str, r: BDResult, anchor: str) -> dict:
    d = {"anchor": anchor, "test": NERV_CODEC, "metric": metric, "bd_rate": r.bd_rate, "bd_quality": r.bd_quality,
         "quality_unit": _QUALITY_UNITS.get(metric, ""), "overlap_quality": r.overlap_quality,
         "overlap_rate": r.overlap_rate, "method": r.method, "anchor_points": r.anchor_points,
         "test_points": r.test_points, "notes": list(r.notes)}
    if metric.startswith("psnr"):
        d["bd_psnr"] = r.bd_quality
    return d


def bd_json(bd: Dict[str, Dict[str, BDResult]]) -> dict:
    """``{baseline: {"bd_rate", "bd_psnr", overlaps..., "by_metric": {metric: {...}}}}``; headline = PSNR-RGB."""
    out = {}
    for anchor, metrics in bd.items():
        by_metric = {m: _bd_entry(m, r, anchor) for m, r in metrics.items()}
        head = dict(by_metric.get("psnr_rgb") or next(iter(by_metric.values()), {}))
        head["by_metric"] = by_metric
        out[anchor] = head
    return out


def to_json(result: BenchResult) -> dict:
    """The whole result as JSON-ready data: ``{"points": [...], "bd": {...}, ...}``."""
    bd = bd_json(result.primary_bd)
    if len(result.clips) > 1:
        bd = {**bd, "per_clip": {c.name: bd_json(c.bd) for c in result.clips}}
    return {
        "points": [p.as_dict() for p in _ordered(result.points)],
        "bd": bd,
        "pooled": ({"points": [p.as_dict() for p in _ordered(result.pooled_points)], "bd": bd_json(result.pooled_bd),
                    "weighting": "frame-weighted means; bytes and seconds summed"}
                   if len(result.clips) > 1 else None),
        "clips": [c.describe() for c in result.clips],
        "settings": result.settings,
        "notes": list(result.notes),
        "files": dict(result.artifacts),
    }


def _ordered(points: Sequence[Point]) -> List[Point]:
    return sorted(points, key=lambda p: (p.clip, _CODEC_ORDER.get(p.codec, 9), p.bpp))


def write_json(result: BenchResult, path: str) -> None:
    _write_text(path, json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------------- CSV


def write_csv(result: BenchResult, path: str) -> None:
    """One row per point (pooled points last, clip ``pooled``), the columns of :class:`Point`."""
    try:
        with open(path, "w", newline="", encoding="utf-8") as fp:
            w = csv.DictWriter(fp, fieldnames=list(POINT_FIELDS))
            w.writeheader()
            for p in _ordered(result.points) + _ordered(result.pooled_points):
                w.writerow({k: ("" if v is None else v) for k, v in p.as_dict().items() if k in POINT_FIELDS})
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------- table


def _fmt(v: Optional[float], spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def _points_table(points: Sequence[Point], vmaf: bool) -> List[str]:
    head = ["codec", "crf", "target", "bpp", "bytes", "PSNR-RGB", "PSNR-Y", "PSNR-YUV", "MS-SSIM"]
    if vmaf:
        head.append("VMAF")
    head += ["enc s", "dec s"]
    rows = [head]
    for p in _ordered(points):
        row = [p.codec, _fmt(p.crf, "d"), _fmt(p.target_bpp, "g"), f"{p.bpp:.4f}", str(p.bytes),
               f"{p.psnr_rgb:.2f}", f"{p.psnr_y:.2f}", f"{p.psnr_yuv:.2f}", _fmt(p.ms_ssim, ".4f")]
        if vmaf:
            row.append(_fmt(p.vmaf, ".2f"))
        row += [f"{p.encode_seconds:.1f}", f"{p.decode_seconds:.1f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _bd_lines(bd: Dict[str, Dict[str, BDResult]]) -> List[str]:
    lines = []
    for anchor, metrics in bd.items():
        for metric, r in metrics.items():
            rate = "n/a" if r.bd_rate is None else f"{r.bd_rate:+.1f} %"
            unit = "dB" if metric.startswith("psnr") else "dB (MS-SSIM)"
            qual = "n/a" if r.bd_quality is None else f"{r.bd_quality:+.2f} {unit}"
            name = "BD-PSNR" if metric.startswith("psnr") else "BD-MS-SSIM"
            lines.append(f"  nervcodec vs {anchor:<4}  {_METRIC_LABELS.get(metric, metric):<22} BD-rate {rate:>9}  "
                         f"{name} {qual}  (overlap: quality {_pct(r.overlap_quality)}, rate {_pct(r.overlap_rate)}; "
                         f"{r.method}, {r.anchor_points} vs {r.test_points} points)")
            for note in r.notes:
                lines.append(f"      note: {note}")
    return lines


TASK_LABELS = (("psnr_rgb_seen", "seen"), ("psnr_rgb_unseen", "unseen"), ("psnr_rgb_holes", "holes"),
               ("psnr_rgb_visible", "outside holes"))


def task_lines(c: ClipResult) -> List[str]:
    """The task scores of nervcodec's points and the tasks' classic baselines, one line each."""
    out = []
    for p in sorted((p for p in c.points if p.tasks), key=lambda p: p.bpp):
        parts = [f"{label} {p.tasks[k]:.2f} dB" for k, label in TASK_LABELS if p.tasks.get(k) is not None]
        out.append(f"{p.codec} {p.bpp:.4f} bpp: all frames {p.tasks['psnr_rgb']:.2f} dB"
                   + (", " + ", ".join(parts) if parts else ""))
    out += [f"{name}: {v:.2f} dB" for name, v in c.task_baselines.items()]
    return out


def _clip_header(c: ClipResult) -> str:
    return f"{c.name}: {c.width}x{c.height} {c.pix_fmt}, {c.frames} frames at {c.fps} fps ({c.path})"


def _effort(nerv: dict) -> str:
    """How long nervcodec fitted, from the settings (older results.json files have only epochs)."""
    if nerv.get("effort"):
        return str(nerv["effort"])
    return f"epochs {nerv['epochs'] if nerv.get('epochs') is not None else 'default'}"


def format_table(result: BenchResult) -> str:
    """The human-readable report: settings, one table per clip, BD figures, pooled summary, notes."""
    vmaf = bool(result.settings.get("vmaf"))
    out: List[str] = ["Settings:"]
    for name, b in result.settings.get("baselines", {}).items():
        out.append(f"  {name}: {b['settings']}")
    nerv = result.settings.get("nervcodec")
    if nerv:
        out.append(f"  nervcodec: model {nerv['model']}, {_effort(nerv)}, device {nerv['device']}, seed {nerv['seed']}")
    out.append("  metrics: decoded output vs source; PSNR-RGB on rgb24 (ffmpeg default conversion), per-frame mean;"
               " PSNR-Y/YUV(6:1:1) on native planes; bpp = file bytes*8/(frames*W*H)")
    for c in result.clips:
        out += ["", _clip_header(c)]
        if c.ms_ssim_note:
            out.append(f"  NOTE: {c.ms_ssim_note}")
        out += ["  " + line for line in _points_table(c.points, vmaf)]
        if c.bd:
            out.append("  BD (anchor = baseline, test = nervcodec; negative BD-rate = nervcodec saves bits):")
            out += _bd_lines(c.bd)
        out += ["  " + line for line in task_lines(c)]
    if len(result.clips) > 1:
        out += ["", f"Pooled over {len(result.clips)} clips (frame-weighted):"]
        if result.pooled_points:
            out += ["  " + line for line in _points_table(result.pooled_points, vmaf)]
        else:
            out.append("  no rate point is common to every clip (give --crf / --bpp to pool)")
        if result.pooled_bd:
            out += _bd_lines(result.pooled_bd)
    clip_notes = {f"{c.name}: {c.ms_ssim_note}" for c in result.clips if c.ms_ssim_note}
    notes = [n for n in result.notes if n not in clip_notes]
    if notes:
        out += [""] + [f"note: {n}" for n in notes]
    if result.artifacts:
        out += [""] + [f"wrote {path}" for path in result.artifacts.values()]
    return "\n".join(out)


# ---------------------------------------------------------------------- markdown


def _md_table(rows: List[List[str]]) -> List[str]:
    head, body = rows[0], rows[1:]
    align = ["---"] + ["--:"] * (len(head) - 1)
    return ["| " + " | ".join(r) + " |" for r in [head, align] + body]


def _md_points(points: Sequence[Point], vmaf: bool) -> List[str]:
    head = ["codec", "CRF", "target bpp", "bpp", "bytes", "PSNR-RGB", "PSNR-Y", "PSNR-YUV", "MS-SSIM"]
    head += ["VMAF"] if vmaf else []
    head += ["encode s", "decode s"]
    rows = [head]
    for p in _ordered(points):
        row = [p.codec, _fmt(p.crf, "d"), _fmt(p.target_bpp, "g"), f"{p.bpp:.4f}", str(p.bytes),
               f"{p.psnr_rgb:.2f}", f"{p.psnr_y:.2f}", f"{p.psnr_yuv:.2f}", _fmt(p.ms_ssim, ".4f")]
        row += [_fmt(p.vmaf, ".2f")] if vmaf else []
        row += [f"{p.encode_seconds:.1f}", f"{p.decode_seconds:.1f}"]
        rows.append(row)
    return _md_table(rows)


def _md_bd(bd: Dict[str, Dict[str, BDResult]]) -> List[str]:
    rows = [["anchor", "metric", "BD-rate", "BD-PSNR / BD-MS-SSIM", "overlap (quality / rate)", "notes"]]
    for anchor, metrics in bd.items():
        for metric, r in metrics.items():
            rows.append([anchor, _METRIC_LABELS.get(metric, metric),
                         "n/a" if r.bd_rate is None else f"{r.bd_rate:+.1f} %",
                         "n/a" if r.bd_quality is None else f"{r.bd_quality:+.2f} dB",
                         f"{_pct(r.overlap_quality)} / {_pct(r.overlap_rate)}", "; ".join(r.notes) or "-"])
    return _md_table(rows)


def format_markdown(result: BenchResult, heading_level: int = 3) -> str:
    """The results as Markdown (settings, a table per clip, BD tables, pooled summary) for docs/benchmarks.md."""
    h = "#" * heading_level
    vmaf = bool(result.settings.get("vmaf"))
    out: List[str] = ["Settings:", ""]
    for name, b in result.settings.get("baselines", {}).items():
        out.append(f"- {name}: `{b['settings']}`")
    nerv = result.settings.get("nervcodec")
    if nerv:
        out.append(f"- nervcodec: model `{nerv['model']}`, {_effort(nerv)}, device {nerv['device']}, "
                   f"seed {nerv['seed']}")
    else:
        out.append("- nervcodec: not run (`--no-nerv`)")
    out.append(f"- BD: {result.settings.get('bd_method')} interpolation, nervcodec (test) against each baseline "
               f"(anchor); negative BD-rate = nervcodec needs fewer bits")
    for c in result.clips:
        out += ["", f"{h} {c.name}", "", f"{c.width}x{c.height} {c.pix_fmt}, {c.frames} frames at {c.fps} fps.", ""]
        if c.ms_ssim_note:
            out += [f"MS-SSIM: {c.ms_ssim_note}.", ""]
        out += _md_points(c.points, vmaf)
        tasks = task_lines(c)
        if tasks:
            out += ["", "Task scores (PSNR-RGB):", ""] + [f"- {line}" for line in tasks]
        if c.notes:
            out += [""] + [f"- {n}" for n in c.notes]
        if c.bd:
            out += [""] + _md_bd(c.bd)
    if len(result.clips) > 1:
        out += ["", f"{h} Pooled over {len(result.clips)} clips (frame-weighted)", ""]
        if result.pooled_points:
            out += _md_points(result.pooled_points, vmaf)
        else:
            out.append("No rate point is common to every clip (the default CRF sweep adapts to each clip); "
                       "run with fixed `--crf` / `--bpp` values to pool.")
        if result.pooled_bd:
            out += [""] + _md_bd(result.pooled_bd)
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- plots


def _draw(ax, points: Sequence[Point], metric: str, title: str) -> None:
    codecs = sorted({p.codec for p in points}, key=lambda c: _CODEC_ORDER.get(c, 9))
    rates = [p.bpp for p in points if p.bpp > 0]
    for codec in codecs:
        pts = sorted((p for p in points if p.codec == codec and getattr(p, metric) is not None), key=lambda p: p.bpp)
        if not pts:
            continue
        color, marker = _STYLE.get(codec, ("tab:gray", "x"))
        if codec == NERV_CODEC:
            how = f"preset {pts[0].preset}" if pts[0].preset else f"{pts[0].epochs or 'default'} epochs"
            label = f"nervcodec {pts[0].model or ''}, {how}".replace("  ", " ")
        else:
            label = f"{codec} (preset {pts[0].preset}, bf {pts[0].bframes})"
        ys = [_plotted(getattr(p, metric), metric) for p in pts]
        ax.plot([p.bpp for p in pts], ys, marker=marker, color=color, label=label)
        for p, y in zip(pts, ys):   # each point says what made it: the CRF, or nervcodec's target
            tag = f"crf {p.crf}" if p.crf is not None else (f"{p.target_bpp:g}" if p.target_bpp is not None else "")
            ax.annotate(tag, (p.bpp, y), textcoords="offset points", xytext=(3, -9), fontsize=6, color=color)
    if rates and max(rates) / min(rates) > 8:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bpp")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)


def _plotted(v: float, metric: str) -> float:
    """MS-SSIM is drawn in dB, -10 log10(1 - MS-SSIM), the scale of the BD table."""
    return ms_ssim_to_db(v) if metric == "ms_ssim" else v


PLOT_FORMATS = ("png", "pdf", "svg")


def plot_rd(result: BenchResult, out_dir: str) -> Dict[str, str]:
    """One figure per metric (:data:`PLOT_FILES`), one panel per clip plus a pooled panel for several clips,
    written as PNG and, for papers, as PDF and SVG beside it (same name)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(c.name, c.points, c.ms_ssim_note) for c in result.clips]
    if len(result.clips) > 1 and result.pooled_points:
        panels.append(("pooled (frame-weighted)", result.pooled_points, None))
    written: Dict[str, str] = {}
    for metric, fname in PLOT_FILES.items():
        n = len(panels)
        cols = min(3, n)
        rows = -(-n // cols)
        fig = Figure(figsize=(5 * cols, 4 * rows), dpi=100)
        FigureCanvasAgg(fig)
        for i, (name, points, note) in enumerate(panels):
            ax = fig.add_subplot(rows, cols, i + 1)
            label = "PSNR-RGB (dB)" if metric == "psnr_rgb" else "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)"
            ax.set_ylabel(label, fontsize=8)
            title = name + (" (MS-SSIM with a small-frame window, see notes)" if metric == "ms_ssim" and note else "")
            _draw(ax, points, metric, title)
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        for fmt in PLOT_FORMATS:
            target = os.path.splitext(path)[0] + "." + fmt
            try:
                fig.savefig(target, format=fmt)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
            if fmt != "png":
                written[f"{metric}_{fmt}"] = target
        written[metric] = path
    return written


def prepare_out_dir(out_dir: str) -> None:
    """Make ``out_dir`` (or refuse it in one line: not creatable, not writable), and remove what a
    previous bench run wrote there, as its results.json lists it (encoded files, tables, plots,
    figures), so a rerun never leaves stale points beside the new ones.  Other files are left alone."""
    from ..fsutil import check_writable
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the --out folder {out_dir}: {exc.strerror or exc}") from None
    check_writable(os.path.join(out_dir, "results.json"), "the --out folder")
    previous = os.path.join(out_dir, "results.json")
    if not os.path.isfile(previous):
        return
    try:
        with open(previous, encoding="utf-8") as fp:
            old = json.load(fp)
    except (OSError, ValueError):
        return
    if not (isinstance(old, dict) and isinstance(old.get("points"), list) and isinstance(old.get("clips"), list)
            and isinstance(old.get("settings"), dict) and "baselines" in old["settings"]):
        return   # not a results.json that bench wrote: touch nothing
    listed = [p.get("file") for p in old["points"] if isinstance(p, dict)]
    listed += [c.get("figure") for c in old["clips"] if isinstance(c, dict)]
    listed += list(old.get("files", {}).values()) if isinstance(old.get("files"), dict) else []
    root = os.path.realpath(out_dir)
    for rel in listed:
        if not isinstance(rel, str) or not rel:
            continue
        # point files are relative to --out; the artifact list holds paths as they were given (with --out)
        for cand in {os.path.realpath(os.path.join(out_dir, rel)), os.path.realpath(rel)}:
            if cand.startswith(root + os.sep) and os.path.isfile(cand):   # only inside --out
                os.remove(cand)
    clip_dirs = [c.get("name") for c in old["clips"] if isinstance(c, dict) and isinstance(c.get("name"), str)]
    for name in [*clip_dirs, "figures"]:   # the folders the old run made, if it left them empty
        folder = os.path.realpath(os.path.join(out_dir, name))
        if not folder.startswith(root + os.sep):
            continue
        for sub in (os.path.join(folder, "decoded"), folder):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def write_outputs(result: BenchResult, out_dir: str) -> Dict[str, str]:
    """results.json, results.csv and the RD plots into ``out_dir``; returns kind -> path (also kept in the result)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    files = {"json": os.path.join(out_dir, "results.json"), "csv": os.path.join(out_dir, "results.csv")}
    files.update({f"plot_{m}": p for m, p in plot_rd(result, out_dir).items()})
    result.artifacts.update(files)
    write_csv(result, files["csv"])
    write_json(result, files["json"])  # last, so it lists every file written
    return files
