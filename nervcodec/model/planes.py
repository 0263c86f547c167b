"""From a model's output to the video's native planes (used by fitting and by synthesis).

Every model predicts all planes at full resolution (Y, U, V, or Y alone for gray).
Chroma planes of a subsampled format are the average of the predicted chroma over
each 2x2 (4:2:0) or 2x1 (4:2:2) block, so the loss is computed against the
source's own planes with no colour conversion, and the decoder does the same.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["split_planes"]


def split_planes(out: torch.Tensor, chroma_shift: Tuple[int, int]) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(B, D, C, h, w) model output -> luma (B, D, h, w) and chroma at native size (B, D, 2, hc, wc)."""
    y = out[:, :, 0]
    if out.shape[2] == 1:
        return y, None
    c = out[:, :, 1:3]
    sy, sx = chroma_shift
    if sy or sx:
        b, d, _, h, w = c.shape
        c = F.avg_pool2d(c.reshape(b * d * 2, 1, h, w), kernel_size=(1 << sy, 1 << sx))
        c = c.reshape(b, d, 2, c.shape[-2], c.shape[-1])
    return y, c
