"""MS-SSIM through pytorch_msssim, with a window that fits small frames.

pytorch_msssim's ``ms_ssim`` downsamples four times and filters with an
11-tap Gaussian at every scale, so it asserts ``min(H, W) > (win_size - 1) * 16``
= 160 pixels.  QCIF (176x144) and smaller would crash, so for such frames the
window shrinks to the largest odd size that fits (9 at QCIF: the Gaussian with
sigma 1.5 has almost no weight beyond +-4 taps, so the value barely moves).
Below 33 pixels no window of 3 or more fits five scales and single-scale SSIM
is used instead.  :class:`MsSsimMethod` records which variant ran so the
report can say so: numbers from different windows are not comparable with
published ones.

Values are computed on 8-bit RGB in [0, 255] with ``data_range=255`` (the
library's default range, stated explicitly so it can never drift from the data).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["DEFAULT_WIN_SIZE", "MS_SSIM_MIN_SIDE", "MsSsimMethod", "ms_ssim_method", "frame_ms_ssim"]

#: pytorch_msssim's default Gaussian window.
DEFAULT_WIN_SIZE = 11
#: Frames need more than this many pixels on their smaller side for the default window.
MS_SSIM_MIN_SIDE = (DEFAULT_WIN_SIZE - 1) * 16
_SCALES_FACTOR = 16  # 2 ** 4 downsamplings


@dataclass(frozen=True)
class MsSsimMethod:
    """Which structural-similarity variant is used for a frame size, and why."""

    kind: str          # "ms-ssim" or "ssim"
    win_size: int
    note: Optional[str] = None  # set whenever the default (MS-SSIM, 11x11 window) could not be used

    @property
    def is_default(self) -> bool:
        return self.kind == "ms-ssim" and self.win_size == DEFAULT_WIN_SIZE

    @property
    def label(self) -> str:
        name = "MS-SSIM" if self.kind == "ms-ssim" else "SSIM"
        return f"{name} ({self.win_size}x{self.win_size} window)"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "win_size": self.win_size, "default": self.is_default, "note": self.note}


def ms_ssim_method(width: int, height: int) -> MsSsimMethod:
    """Choose MS-SSIM's window for frames of this size (see the module docstring)."""
    side = min(width, height)
    if side > MS_SSIM_MIN_SIDE:
        return MsSsimMethod("ms-ssim", DEFAULT_WIN_SIZE)
    # largest odd w with (w - 1) * 16 < side
    win = ((side - 1) // _SCALES_FACTOR) + 1
    if win % 2 == 0:
        win -= 1
    if win >= 3:
        return MsSsimMethod(
            "ms-ssim", win,
            f"frames are {width}x{height}, under {MS_SSIM_MIN_SIDE + 1} px on a side: MS-SSIM uses a "
            f"{win}x{win} Gaussian window instead of {DEFAULT_WIN_SIZE}x{DEFAULT_WIN_SIZE}")
    win = max(1, min(DEFAULT_WIN_SIZE, side if side % 2 else side - 1))
    return MsSsimMethod(
        "ssim", win,
        f"frames are {width}x{height}, too small for the five scales of MS-SSIM: single-scale SSIM "
        f"with a {win}x{win} window is reported in the MS-SSIM column")


def frame_ms_ssim(reference_rgb: np.ndarray, distorted_rgb: np.ndarray,
                  method: Optional[MsSsimMethod] = None, data_range: float = 255.0) -> np.ndarray:
    """Per-frame MS-SSIM (or SSIM, per ``method``) of two (N, H, W, C) batches.

    ``data_range`` must match the values: 255 for uint8 RGB code values.
    """
    import torch
    from pytorch_msssim import ms_ssim, ssim

    if reference_rgb.shape != distorted_rgb.shape:
        raise ValueError(f"shapes differ: {reference_rgb.shape} vs {distorted_rgb.shape}")
    if reference_rgb.ndim != 4:
        raise ValueError("expected (N, H, W, C) frames")
    n, h, w, _ = reference_rgb.shape
    if n == 0:
        return np.zeros(0, np.float64)
    method = method or ms_ssim_method(w, h)

    def tensor(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).to(torch.float32)

    with torch.no_grad():
        x, y = tensor(reference_rgb), tensor(distorted_rgb)
        if method.kind == "ms-ssim":
            values = ms_ssim(x, y, data_range=data_range, size_average=False, win_size=method.win_size)
        else:
            values = ssim(x, y, data_range=data_range, size_average=False, win_size=method.win_size)
    return values.to(torch.float64).numpy().reshape(n)
