"""Per-frame PSNR on native planes, averaged over frames (the codec convention)."""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

from ..io.video import PixelFormat

__all__ = ["FrameScores", "plane_psnr"]


def plane_psnr(a: np.ndarray, b: np.ndarray, max_value: int) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * math.log10(max_value ** 2 / mse)


class FrameScores:
    """Accumulates PSNR-Y and PSNR-YUV (6:1:1) frame by frame."""

    def __init__(self, fmt: PixelFormat):
        self.fmt = fmt
        self.y: List[float] = []
        self.yuv: List[float] = []

    def add(self, ref: Sequence[np.ndarray], dec: Sequence[np.ndarray]) -> None:
        p = [plane_psnr(r, d, self.fmt.max_value) for r, d in zip(ref, dec)]
        self.y.append(p[0])
        self.yuv.append((6 * p[0] + p[1] + p[2]) / 8 if len(p) == 3 else p[0])

    @property
    def psnr_y(self) -> float:
        return float(np.mean(self.y)) if self.y else float("nan")

    @property
    def psnr_yuv(self) -> float:
        return float(np.mean(self.yuv)) if self.yuv else float("nan")
