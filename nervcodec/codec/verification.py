"""Decoding a written file from disk and measuring it against its sources (``encode --verify``)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, Sequence

from ..metrics import measure_pair
from .decode import decode

__all__ = ["VerifyResult", "verify"]


@dataclass(frozen=True)
class VerifyResult:
    """Quality of the decoded file, pooled over all its videos (frame-weighted means)."""

    psnr_rgb: float
    psnr_y: float
    psnr_yuv: float
    frames: int
    decode_seconds: float

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def verify(path: str | os.PathLike, inputs: Sequence[str | os.PathLike], device: str = "auto") -> VerifyResult:
    """Decode ``path`` (every video, in a temporary folder) and measure each against its source as
    ``bench`` does: PSNR-RGB through ffmpeg's rgb24 conversion, PSNR-Y and PSNR-YUV on the native planes."""
    with tempfile.TemporaryDirectory(prefix="nervcodec-verify-") as tmp:
        res = decode(path, tmp + os.sep, device=device)  # a folder: one y4m per video, collection or not
        results = [measure_pair(src, dec) for src, dec in zip(inputs, res.outputs)]
    frames = sum(r["frames"] for r in results)
    pooled = {k: sum(r[k] * r["frames"] for r in results) / frames for k in ("psnr_rgb", "psnr_y", "psnr_yuv")}
    return VerifyResult(frames=frames, decode_seconds=res.seconds, **pooled)
