"""Full-reference quality of a decoded video against its source, the same way for every codec.

:class:`QualityMeter` takes matching batches of native frames (as the reader
yields them or as a decoder holds them in memory, e.g. for ``encode --verify``)
and accumulates per-frame values; :func:`compare_videos` streams two files
through it.  Only one batch of each video is in memory at a time.

Per frame it computes PSNR-Y/U/V and PSNR-YUV on the native planes, converts
both batches to rgb24 with ffmpeg's default conversion (:mod:`.rgb`) and
computes PSNR-RGB and MS-SSIM there.  Means are over frames.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..errors import InputError
from ..io.video import Frames, PixelFormat
from .msssim import MsSsimMethod, frame_ms_ssim, ms_ssim_method
from .psnr import plane_frame_psnr, rgb_frame_psnr
from .rgb import frames_to_rgb24

__all__ = ["QualityReport", "QualityMeter", "compare_videos", "measure_frames", "measure_pair"]

_BATCH_BYTES = 24 * 1024 * 1024  # RGB bytes per batch: bounds the float tensors MS-SSIM builds


@dataclass
class QualityReport:
    """Mean quality over all frames (and the per-frame values behind each mean)."""

    frames: int
    width: int
    height: int
    pix_fmt: str
    psnr_rgb: float
    psnr_y: float
    psnr_u: Optional[float]
    psnr_v: Optional[float]
    psnr_yuv: float
    ms_ssim: Optional[float]
    ms_ssim_method: Optional[MsSsimMethod]
    per_frame: Dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def as_dict(self, per_frame: bool = False) -> dict:
        """JSON-ready mapping (per-frame lists only on request: they are long)."""
        d = {
            "frames": self.frames, "width": self.width, "height": self.height, "pix_fmt": self.pix_fmt,
            "psnr_rgb": self.psnr_rgb, "psnr_y": self.psnr_y, "psnr_u": self.psnr_u, "psnr_v": self.psnr_v,
            "psnr_yuv": self.psnr_yuv, "ms_ssim": self.ms_ssim,
            "ms_ssim_method": self.ms_ssim_method.as_dict() if self.ms_ssim_method else None,
        }
        if per_frame:
            d["per_frame"] = {k: [float(x) for x in v] for k, v in self.per_frame.items()}
        return d


class QualityMeter:
    """Accumulates per-frame metrics over matching batches of reference and distorted frames."""

    def __init__(self, width: int, height: int, pix_fmt: PixelFormat, *, ms_ssim: bool = True):
        self.width, self.height, self.pix_fmt = width, height, pix_fmt
        self.method: Optional[MsSsimMethod] = ms_ssim_method(width, height) if ms_ssim else None
        self._values: Dict[str, List[np.ndarray]] = {}

    def _push(self, key: str, values: Optional[np.ndarray]) -> None:
        if values is not None:
            self._values.setdefault(key, []).append(np.asarray(values, np.float64))

    def add(self, reference: Frames, distorted: Frames) -> None:
        """Measure one batch; both must have this meter's size and pixel format and equal length."""
        for name, f in (("reference", reference), ("distorted", distorted)):
            if (f.width, f.height) != (self.width, self.height) or f.pix_fmt != self.pix_fmt:
                raise InputError(f"{name} frames are {f.width}x{f.height} {f.pix_fmt.name}, expected "
                                 f"{self.width}x{self.height} {self.pix_fmt.name}")
        if len(reference) != len(distorted):
            raise InputError(f"batches differ in length: {len(reference)} vs {len(distorted)} frames")
        planes = plane_frame_psnr(reference, distorted)
        self._push("psnr_y", planes.y)
        self._push("psnr_u", planes.u)
        self._push("psnr_v", planes.v)
        self._push("psnr_yuv", planes.yuv)
        ref_rgb, dist_rgb = frames_to_rgb24(reference), frames_to_rgb24(distorted)
        self._push("psnr_rgb", rgb_frame_psnr(ref_rgb, dist_rgb))
        if self.method is not None:
            self._push("ms_ssim", frame_ms_ssim(ref_rgb, dist_rgb, self.method, data_range=255.0))

    def report(self) -> QualityReport:
        """Means over every frame added so far."""
        per = {k: np.concatenate(v) for k, v in self._values.items()}
        if not per:
            raise InputError("no frames were compared")

        def mean(key: str) -> Optional[float]:
            return float(np.mean(per[key])) if key in per else None

        return QualityReport(
            frames=int(per["psnr_y"].size), width=self.width, height=self.height, pix_fmt=self.pix_fmt.name,
            psnr_rgb=float(np.mean(per["psnr_rgb"])), psnr_y=float(np.mean(per["psnr_y"])),
            psnr_u=mean("psnr_u"), psnr_v=mean("psnr_v"), psnr_yuv=float(np.mean(per["psnr_yuv"])),
            ms_ssim=mean("ms_ssim"), ms_ssim_method=self.method, per_frame=per)


def _batch_size(width: int, height: int) -> int:
    return int(max(1, min(32, _BATCH_BYTES // max(1, width * height * 3))))


def measure_frames(reference: Frames, distorted: Frames, *, ms_ssim: bool = True) -> QualityReport:
    """Quality of in-memory ``distorted`` frames against ``reference`` (e.g. for ``encode --verify``)."""
    meter = QualityMeter(reference.width, reference.height, reference.pix_fmt, ms_ssim=ms_ssim)
    step = _batch_size(reference.width, reference.height)
    if len(reference) != len(distorted):
        raise InputError(f"frame counts differ: {len(reference)} vs {len(distorted)}")
    for i in range(0, len(reference), step):
        meter.add(reference[i:i + step], distorted[i:i + step])
    return meter.report()


def compare_videos(reference: "str | os.PathLike[str]", distorted: "str | os.PathLike[str]", *,
                   ms_ssim: bool = True) -> QualityReport:
    """Stream two video files (y4m or anything ffmpeg reads) and measure ``distorted`` against ``reference``.

    They must agree in size, pixel format and frame count: a decoded output in
    another pixel format has to be converted first (the benchmark decodes every
    codec straight to the source's format), because comparing planes of
    different depth or subsampling has no meaning.
    """
    from ..io import open_video

    with open_video(reference) as ref, open_video(distorted) as dist:
        ri, di = ref.info, dist.info
        if (ri.width, ri.height) != (di.width, di.height):
            raise InputError(f"{distorted}: {di.width}x{di.height}, but the reference is {ri.width}x{ri.height}")
        if ri.pix_fmt != di.pix_fmt:
            raise InputError(f"{distorted}: pixel format {di.pix_fmt.name}, but the reference is "
                             f"{ri.pix_fmt.name}; decode to the reference's format before comparing")
        if ri.num_frames != di.num_frames:
            raise InputError(f"{distorted}: {di.num_frames} frames, but the reference has {ri.num_frames}")
        meter = QualityMeter(ri.width, ri.height, ri.pix_fmt, ms_ssim=ms_ssim)
        step = _batch_size(ri.width, ri.height)
        for r, d in zip(ref.iter_frames(batch=step), dist.iter_frames(batch=step)):
            meter.add(r, d)
        return meter.report()


def measure_pair(reference: "str | os.PathLike[str]", distorted: "str | os.PathLike[str]", *,
                 ms_ssim: bool = False) -> dict:
    """:func:`compare_videos` as a plain dict (``frames``, ``psnr_rgb``, ``psnr_y``, ``psnr_yuv``, ...).

    For callers that only report numbers, such as ``encode --verify``.  MS-SSIM
    is off by default because it is the slow part on a CPU; ``ms_ssim`` is then None.
    """
    return compare_videos(reference, distorted, ms_ssim=ms_ssim).as_dict()
