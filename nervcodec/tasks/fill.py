"""Filling holes from the visible pixels alone (push-pull), for D-NeRV's keyframes under ``--mask``.

D-NeRV shows its decoded keyframes at keyframe positions and warps them into every
other frame, so whatever a keyframe holds inside a hole reaches the output.  The
encoder must not know that content, and a black hole would be warped into the
neighbouring frames as a black blob; so keyframes are coded with each hole filled
from its surroundings: the visible pixels are averaged into a pyramid of 2x2 blocks
until every block has some, and each hole pixel takes the value of the finest block
that has visible pixels (the classic push-pull of scattered-data interpolation).
The result depends on the visible pixels only, by construction.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["fill_holes"]


def _push_pull(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """x (…, H, W) float, valid (…, H, W) float weights in {0, 1} -> x with invalid pixels filled."""
    h, w = x.shape[-2:]
    if h <= 1 and w <= 1:
        return np.where(valid > 0, x, 0.5)   # nothing visible at all: mid-grey (caller rescales)
    ph, pw = h + (h & 1), w + (w & 1)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph - h), (0, pw - w)]
    xs, vs = np.pad(x * valid, pad), np.pad(valid, pad)
    shape = x.shape[:-2] + (ph // 2, 2, pw // 2, 2)
    ws = vs.reshape(shape).sum(axis=(-3, -1))
    coarse = np.where(ws > 0, xs.reshape(shape).sum(axis=(-3, -1)) / np.maximum(ws, 1e-12), 0.0)
    filled = _push_pull(coarse, (ws > 0).astype(x.dtype))
    up = np.repeat(np.repeat(filled, 2, axis=-2), 2, axis=-1)[..., :h, :w]
    return np.where(valid > 0, x, up)


def fill_holes(plane: np.ndarray, holes: np.ndarray, max_value: Optional[int] = None) -> np.ndarray:
    """``plane`` (…, H, W) integer samples with the pixels where ``holes`` (broadcastable bool) is
    True replaced by a smooth fill from the others, same dtype; ``max_value`` is the samples' peak
    (the bit depth's, e.g. 1023 in a uint16 array; default the dtype's), and a frame with nothing
    visible becomes its middle grey."""
    holes = np.broadcast_to(holes, plane.shape)
    if not holes.any():
        return plane.copy()
    top = float(max_value if max_value is not None else (np.iinfo(plane.dtype).max if plane.dtype.kind in "ui"
                                                         else 1.0))
    x = plane.astype(np.float64) / top
    out = _push_pull(x, (~holes).astype(np.float64))
    return np.clip(np.rint(out * top), 0, top).astype(plane.dtype)
