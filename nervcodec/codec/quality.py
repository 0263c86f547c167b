"""Per-frame PSNR on native planes, averaged over frames (the codec convention)."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from ..io.video import PixelFormat
from ..metrics.psnr import YUV_WEIGHTS, frame_psnr

__all__ = ["FrameScores", "plane_psnr"]


def plane_psnr(a: np.ndarray, b: np.ndarray, max_value: int) -> float:
    """PSNR of one plane, the same function (and 100 dB cap) as :mod:`nervcodec.metrics` uses."""
    return float(frame_psnr(a[None], b[None], max_value)[0])


class FrameScores:
    """Accumulates PSNR-Y and PSNR-YUV (6:1:1) frame by frame."""

    def __init__(self, fmt: PixelFormat):
        self.fmt = fmt
        self.y: List[float] = []
        self.yuv: List[float] = []

    def add(self, ref: Sequence[np.ndarray], dec: Sequence[np.ndarray]) -> None:
        p = [plane_psnr(r, d, self.fmt.max_value) for r, d in zip(ref, dec)]
        self.y.append(p[0])
        self.yuv.append(float(np.dot(YUV_WEIGHTS, p) / sum(YUV_WEIGHTS)) if len(p) == 3 else p[0])

    @property
    def psnr_y(self) -> float:
        return float(np.mean(self.y)) if self.y else float("nan")

    @property
    def psnr_yuv(self) -> float:
        return float(np.mean(self.yuv)) if self.yuv else float("nan")
