"""PSNR in the two conventions a video codec is judged by.

* **PSNR-RGB** (the NeRV papers' number): both videos are converted to 8-bit
  RGB, the MSE is taken over all three channels of one frame, turned into a
  PSNR with a peak of 255, and the per-frame PSNRs are averaged over frames.
* **PSNR-Y / PSNR-YUV** (codec practice): the same per-frame PSNR on the native
  planes with the peak of the bit depth (255 for 8 bit, 1023 for 10 bit), then
  PSNR-YUV = (6·Y + U + V) / 8 per frame, as in the JVET common test conditions.

Averaging per-frame PSNRs (rather than taking the PSNR of the mean MSE, which
is what ffmpeg's ``psnr`` filter prints) is the convention of both families of
papers, so it is the one used for every codec here.

A frame that is reproduced exactly has an infinite PSNR; it is capped at
:data:`PSNR_CAP_DB` so that a single lossless frame cannot make a mean infinite
(and JSON stays valid).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..io.video import Frames

__all__ = [
    "PSNR_CAP_DB",
    "YUV_WEIGHTS",
    "mse_to_psnr",
    "frame_mse",
    "frame_psnr",
    "rgb_frame_psnr",
    "PlanePSNR",
    "plane_frame_psnr",
]

#: Upper bound of a per-frame PSNR (an exact frame would otherwise be +inf).
PSNR_CAP_DB = 100.0

#: Weights of the Y, U and V PSNRs in PSNR-YUV (JVET CTC 6:1:1).
YUV_WEIGHTS: Tuple[float, float, float] = (6.0, 1.0, 1.0)


def mse_to_psnr(mse: np.ndarray | float, peak: float) -> np.ndarray:
    """PSNR in dB of one or more MSE values for a signal whose largest code value is ``peak``.

    Zero MSE maps to :data:`PSNR_CAP_DB`, and every result is capped there too.
    """
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10((float(peak) ** 2) / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


def frame_mse(reference: np.ndarray, distorted: np.ndarray) -> np.ndarray:
    """Mean squared error of each frame: axis 0 indexes frames, every other axis is averaged.

    Computed in float64 on the integer code values, so 8-, 10- and 16-bit input
    are exact and no scaling to [0, 1] can change the result.
    """
    if reference.shape != distorted.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {distorted.shape}")
    if reference.ndim < 2:
        raise ValueError("expected a batch of frames (frames first)")
    diff = reference.astype(np.float64) - distorted.astype(np.float64)
    return np.mean(diff.reshape(diff.shape[0], -1) ** 2, axis=1)


def frame_psnr(reference: np.ndarray, distorted: np.ndarray, peak: float) -> np.ndarray:
    """Per-frame PSNR (dB, capped) of two batches of frames with the given peak value."""
    return mse_to_psnr(frame_mse(reference, distorted), peak)


def rgb_frame_psnr(reference_rgb: np.ndarray, distorted_rgb: np.ndarray) -> np.ndarray:
    """Per-frame PSNR-RGB of two (N, H, W, 3) uint8 batches: MSE over all channels, peak 255."""
    if reference_rgb.dtype != np.uint8 or distorted_rgb.dtype != np.uint8:
        raise ValueError("PSNR-RGB is defined on 8-bit RGB (rgb24) frames")
    return frame_psnr(reference_rgb, distorted_rgb, 255.0)


@dataclass(frozen=True)
class PlanePSNR:
    """Per-frame PSNRs of the native planes of one batch (U and V are None for gray video)."""

    y: np.ndarray
    u: np.ndarray | None
    v: np.ndarray | None

    @property
    def yuv(self) -> np.ndarray:
        """Per-frame (6·Y + U + V) / 8; equal to Y for gray video."""
        if self.u is None or self.v is None:
            return self.y
        wy, wu, wv = YUV_WEIGHTS
        return (wy * self.y + wu * self.u + wv * self.v) / (wy + wu + wv)


def plane_frame_psnr(reference: Frames, distorted: Frames) -> PlanePSNR:
    """Per-frame PSNR of each native plane, with the peak of the pixel format's bit depth.

    Both batches must have the same pixel format and size: comparing planes of
    different formats would silently mix scales, so the caller converts first.
    """
    if reference.pix_fmt != distorted.pix_fmt:
        raise ValueError(f"pixel formats differ: {reference.pix_fmt.name} vs {distorted.pix_fmt.name}")
    if len(reference) != len(distorted):
        raise ValueError(f"frame counts differ: {len(reference)} vs {len(distorted)}")
    peak = float(reference.pix_fmt.max_value)
    values = [frame_psnr(r, d, peak) for r, d in zip(reference.planes, distorted.planes)]
    if len(values) == 1:
        return PlanePSNR(values[0], None, None)
    return PlanePSNR(values[0], values[1], values[2])
