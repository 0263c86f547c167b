"""Result records of a benchmark run, and their JSON form.

A :class:`Point` is one encode of one clip by one codec, measured on its
decoded output against the source.  Baseline points have a ``crf``;
nervcodec points have ``crf=None`` and the ``target_bpp`` they aimed at.

Pooled points (several clips) average every metric *weighted by frames*, so
a long clip counts for as many frames as it has, as if all clips were one
video; bytes and seconds are summed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from ..metrics.bd import BDResult

__all__ = ["Point", "ClipResult", "BenchResult", "pool_points", "POINT_FIELDS", "NERV_CODEC"]

NERV_CODEC = "nervcodec"


@dataclass
class Point:
    codec: str                       # "h264" | "hevc" | "nervcodec"
    clip: str
    crf: Optional[int]
    target_bpp: Optional[float]
    bpp: float
    bytes: int
    frames: int
    width: Optional[int]
    height: Optional[int]
    psnr_rgb: float
    psnr_y: float
    psnr_u: Optional[float]
    psnr_v: Optional[float]
    psnr_yuv: float
    ms_ssim: Optional[float]
    vmaf: Optional[float]
    encode_seconds: float
    decode_seconds: float
    preset: Optional[str] = None     # baselines: x264/x265's; nervcodec: its effort (None with --epochs)
    bframes: Optional[int] = None    # baselines only
    model: Optional[str] = None      # nervcodec only
    epochs: Optional[float] = None   # nervcodec only: passes over the training items
    file: Optional[str] = None       # encoded file, relative to --out (None when not kept)
    ms_ssim_method: Optional[str] = None
    tasks: Optional[Dict[str, object]] = None  # nervcodec with --holdout / --mask / --reference: the task scores
    params: Optional[int] = None     # nervcodec only: network parameters, and what each costs in the file
    bits_per_param: Optional[float] = None
    fit_psnr_float: Optional[float] = None      # nervcodec's rate-aware fit: its float and quantized network
    fit_psnr_quantized: Optional[float] = None  # (the fit's measure; the quantization loss is their difference)

    @property
    def key(self) -> Tuple[str, Optional[int], Optional[float]]:
        return (self.codec, self.crf, self.target_bpp)

    def as_dict(self) -> dict:
        return {k: _json_number(v) for k, v in asdict(self).items()}


POINT_FIELDS: Tuple[str, ...] = tuple(f for f in Point.__dataclass_fields__ if f != "tasks")  # CSV columns


def _json_number(v):
    """JSON has no NaN/inf: such values become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class ClipResult:
    """Everything measured on one input clip."""

    name: str
    path: str
    width: int
    height: int
    frames: int
    fps: str
    pix_fmt: str
    bpp_targets: List[float]
    crfs: Dict[str, List[int]]
    points: List[Point] = field(default_factory=list)
    bd: Dict[str, Dict[str, BDResult]] = field(default_factory=dict)  # baseline -> metric -> result
    ms_ssim_note: Optional[str] = None
    notes: List[str] = field(default_factory=list)  # e.g. rate points that could not be made
    figure: Optional[str] = None    # --figures: the side-by-side PNG, relative to the output folder
    task_baselines: Dict[str, float] = field(default_factory=dict)  # PSNR-RGB of the tasks' classic baselines

    def points_of(self, codec: str) -> List[Point]:
        return sorted((p for p in self.points if p.codec == codec), key=lambda p: p.bpp)

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "width": self.width, "height": self.height,
                "frames": self.frames, "fps": self.fps, "pix_fmt": self.pix_fmt,
                "bpp_targets": self.bpp_targets, "crfs": self.crfs, "ms_ssim_note": self.ms_ssim_note,
                "notes": list(self.notes), "figure": self.figure, "task_baselines": dict(self.task_baselines)}


@dataclass
class BenchResult:
    """A whole run: per-clip results, the pooled summary and the settings used."""

    clips: List[ClipResult]
    settings: dict
    pooled_points: List[Point] = field(default_factory=list)
    pooled_bd: Dict[str, Dict[str, BDResult]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    artifacts: Dict[str, str] = field(default_factory=dict)  # kind -> path of written files

    @property
    def points(self) -> List[Point]:
        return [p for c in self.clips for p in c.points]

    @property
    def primary_bd(self) -> Dict[str, Dict[str, BDResult]]:
        """The BD figures a reader wants first: the pooled curves with several clips, else the clip's."""
        if len(self.clips) > 1:
            return self.pooled_bd
        return self.clips[0].bd if self.clips else {}


def pool_points(clips: List[ClipResult]) -> List[Point]:
    """Frame-weighted pooled points over clips.

    Points are matched by their rung: a baseline by CRF, nervcodec by the rank
    of its target on each clip's ladder (default targets differ per clip because
    they follow the clip's size).  Only rungs every clip has are pooled.
    """
    if len(clips) < 2:
        return []
    rungs: Dict[Tuple[str, object], List[Point]] = {}
    for clip in clips:
        nerv = sorted((p for p in clip.points if p.codec == NERV_CODEC), key=lambda p: p.target_bpp or 0.0)
        for rank, p in enumerate(nerv):
            rungs.setdefault((NERV_CODEC, rank), []).append(p)
        for p in clip.points:
            if p.codec != NERV_CODEC:
                rungs.setdefault((p.codec, p.crf), []).append(p)
    pooled: List[Point] = []
    for (codec, rung), pts in rungs.items():
        if len(pts) != len(clips):
            continue
        total = sum(p.frames for p in pts)

        def avg(name: str) -> Optional[float]:
            vals = [getattr(p, name) for p in pts]
            if any(v is None for v in vals):
                return None
            return sum(v * p.frames for v, p in zip(vals, pts)) / total

        sizes = {(p.width, p.height) for p in pts}
        w, h = next(iter(sizes)) if len(sizes) == 1 else (None, None)
        first = pts[0]
        pooled.append(Point(
            codec=codec, clip="pooled", crf=first.crf if codec != NERV_CODEC else None,
            target_bpp=avg("target_bpp") if codec == NERV_CODEC else None,
            bpp=avg("bpp") or 0.0, bytes=sum(p.bytes for p in pts), frames=total, width=w, height=h,
            psnr_rgb=avg("psnr_rgb") or 0.0, psnr_y=avg("psnr_y") or 0.0, psnr_u=avg("psnr_u"),
            psnr_v=avg("psnr_v"), psnr_yuv=avg("psnr_yuv") or 0.0, ms_ssim=avg("ms_ssim"), vmaf=avg("vmaf"),
            encode_seconds=sum(p.encode_seconds for p in pts), decode_seconds=sum(p.decode_seconds for p in pts),
            preset=first.preset, bframes=first.bframes, model=first.model, epochs=first.epochs,
            ms_ssim_method=first.ms_ssim_method if len({p.ms_ssim_method for p in pts}) == 1 else "mixed"))
    pooled.sort(key=lambda p: (p.codec, p.bpp))
    return pooled
