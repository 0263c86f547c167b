"""The classic per-frame denoising baselines of the NeRV paper's comparison: a 3x3 median filter
and a Gaussian filter (sigma 1, 5 taps), each applied to every plane of every frame with
edge-replicated borders."""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from ..errors import ConfigError
from ..io.video import Frames

__all__ = ["FILTERS", "apply_filter", "median3", "gaussian"]


def _shifts(p: np.ndarray, r: int) -> np.ndarray:
    h, w = p.shape[-2:]
    pad = np.pad(p, [(0, 0)] * (p.ndim - 2) + [(r, r), (r, r)], mode="edge")
    return np.stack([pad[..., dy:dy + h, dx:dx + w] for dy in range(2 * r + 1) for dx in range(2 * r + 1)])


def median3(plane: np.ndarray) -> np.ndarray:
    """3x3 median of (…, H, W) integer samples."""
    return np.median(_shifts(plane, 1), axis=0).round().astype(plane.dtype)


GAUSS_TAPS = np.exp(-0.5 * np.arange(-2, 3) ** 2)
GAUSS_TAPS = GAUSS_TAPS / GAUSS_TAPS.sum()


def gaussian(plane: np.ndarray) -> np.ndarray:
    """Separable Gaussian (sigma 1, 5 taps) of (…, H, W) integer samples."""
    x = plane.astype(np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (2, 2)
        xp = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(t * np.take(xp, np.arange(k, k + n), axis=axis) for k, t in enumerate(GAUSS_TAPS))
    top = np.iinfo(plane.dtype).max
    return np.clip(np.rint(x), 0, top).astype(plane.dtype)


FILTERS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {"median3": median3, "gaussian": gaussian}


def apply_filter(frames: Frames, name: str) -> Frames:
    """Every plane of every frame through the filter ``name``, 16 frames at a time."""
    try:
        fn = FILTERS[name]
    except KeyError:
        raise ConfigError(f"unknown filter {name!r} (known: {', '.join(FILTERS)})") from None
    out = []
    for p in frames.planes:
        q = np.empty_like(p)
        for s in range(0, p.shape[0], 16):
            q[s:s + 16] = fn(p[s:s + 16])
        out.append(q)
    return Frames(tuple(out), frames.pix_fmt)
