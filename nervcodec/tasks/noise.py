"""Seeded corruption of a clean clip, for denoising experiments (``nervcodec noise``).

The NeRV paper fits noisy videos and scores the output against the clean one; its
noise types are white, black, salt-and-pepper and random.  The same corruption is
reproduced here from a seed, on the native planes, and reported exactly:

* ``saltpepper:P``: each luma sample independently becomes the maximum (salt) with
  probability P/2 and 0 (pepper) with probability P/2;
* ``white:P`` / ``black:P``: salt only / pepper only, with probability P;
* ``gaussian:S``: zero-mean Gaussian noise of standard deviation S (in 8-bit code values,
  scaled to the clip's depth) added to every sample of every plane, rounded and clipped;
* ``patches:N``: N squares per frame (side a tenth of the shorter frame side, at least 2)
  at random places, every sample of every plane inside them drawn uniformly.

Impulse noise changes luma only: in 4:2:0 a chroma sample is shared by four pixels,
so whitening one pixel's chroma would corrupt its neighbours as well.  Each frame draws
from one generator in frame order, so the same seed gives the same noise on any machine
(numpy's PCG64 stream is fixed across platforms).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from ..errors import ConfigError
from ..io.video import Frames

__all__ = ["NoiseSpec", "NOISE_TYPES", "parse_noise", "add_noise"]

NOISE_TYPES = ("saltpepper", "white", "black", "gaussian", "patches")


@dataclass(frozen=True)
class NoiseSpec:
    kind: str
    amount: float      # density (impulse noise), sigma (gaussian) or the number of patches

    def __post_init__(self) -> None:
        if self.kind not in NOISE_TYPES:
            raise ConfigError(f"unknown noise {self.kind!r} (known: {', '.join(NOISE_TYPES)})")
        if self.kind in ("saltpepper", "white", "black") and not 0 < self.amount <= 1:
            raise ConfigError(f"the density of {self.kind} noise must be in (0, 1], got {self.amount:g}")
        if self.kind == "gaussian" and not 0 < self.amount <= 255:
            raise ConfigError(f"the sigma of gaussian noise must be in (0, 255], got {self.amount:g}")
        if self.kind == "patches" and not (self.amount >= 1 and float(self.amount).is_integer()
                                           and self.amount <= 1000):
            raise ConfigError(f"the number of patches must be a whole number in 1..1000, got {self.amount:g}")

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.amount:g}"


def parse_noise(text: str) -> NoiseSpec:
    """``saltpepper:0.1``, ``white:0.05``, ``black:0.05``, ``gaussian:25`` or ``patches:4``."""
    m = re.fullmatch(r"\s*([a-z&_-]+)\s*:\s*([0-9.eE+-]+)\s*", text.lower())
    if not m:
        raise ConfigError(f"--noise must look like TYPE:AMOUNT ({', '.join(NOISE_TYPES)}), e.g. saltpepper:0.1; "
                          f"got {text!r}")
    kind = {"s&p": "saltpepper", "salt-and-pepper": "saltpepper", "salt_pepper": "saltpepper",
            "gauss": "gaussian"}.get(m.group(1), m.group(1))
    try:
        amount = float(m.group(2))
    except ValueError:
        raise ConfigError(f"the amount in --noise {text!r} is not a number") from None
    return NoiseSpec(kind, amount)


def _patch_side(h: int, w: int) -> int:
    return max(2, min(h, w) // 10)


def add_noise(frames: Frames, spec: NoiseSpec, seed: int) -> Tuple[Frames, Dict[str, object], np.ndarray]:
    """``(noisy frames, report, corrupted)``: ``corrupted`` is the (N, H, W) bool map of the luma
    samples the noise was applied to (every sample for gaussian noise)."""
    fmt = frames.pix_fmt
    top = fmt.max_value
    rng = np.random.default_rng(seed)
    planes = [p.copy() for p in frames.planes]
    n, h, w = planes[0].shape
    corrupted = np.zeros((n, h, w), bool)
    salt = pepper = 0
    for i in range(n):
        if spec.kind in ("saltpepper", "white", "black"):
            u = rng.random((h, w))
            if spec.kind == "saltpepper":
                is_salt, is_pepper = u < spec.amount / 2, (u >= spec.amount / 2) & (u < spec.amount)
            elif spec.kind == "white":
                is_salt, is_pepper = u < spec.amount, np.zeros((h, w), bool)
            else:
                is_salt, is_pepper = np.zeros((h, w), bool), u < spec.amount
            planes[0][i][is_salt] = top
            planes[0][i][is_pepper] = 0
            corrupted[i] = is_salt | is_pepper
            salt += int(is_salt.sum())
            pepper += int(is_pepper.sum())
        elif spec.kind == "gaussian":
            sigma = spec.amount * top / 255.0
            for p in planes:
                noisy = p[i].astype(np.float64) + rng.normal(0.0, sigma, p[i].shape)
                p[i] = np.clip(np.rint(noisy), 0, top).astype(p.dtype)
            corrupted[i] = True
        else:
            side = _patch_side(h, w)
            for _ in range(int(spec.amount)):
                y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                corrupted[i, y0:y0 + side, x0:x0 + side] = True
                for k, p in enumerate(planes):
                    sy, sx = (fmt.log2_chroma_h, fmt.log2_chroma_w) if k else (0, 0)
                    ys, xs = slice(y0 >> sy, -(-(y0 + side) >> sy)), slice(x0 >> sx, -(-(x0 + side) >> sx))
                    region = p[i, ys, xs]
                    p[i, ys, xs] = rng.integers(0, top + 1, region.shape).astype(p.dtype)
    noisy = Frames(tuple(planes), fmt)
    report: Dict[str, object] = {
        "noise": spec.kind, "amount": spec.amount, "seed": seed, "frames": n,
        "luma_samples": n * h * w, "corrupted_luma_samples": int(corrupted.sum()),
        "changed_samples": [int((a != b).sum()) for a, b in zip(frames.planes, planes)],
        "description": describe(spec, fmt.bit_depth)}
    if spec.kind in ("saltpepper", "white", "black"):
        report.update(salt=salt, pepper=pepper)
    if spec.kind == "patches":
        report["patch_side"] = _patch_side(h, w)
    return noisy, report, corrupted


def describe(spec: NoiseSpec, bit_depth: int = 8) -> str:
    """One sentence saying exactly what :func:`add_noise` does with ``spec``."""
    top = (1 << bit_depth) - 1
    if spec.kind == "saltpepper":
        return (f"each luma sample set to {top} with probability {spec.amount / 2:g} and to 0 with probability "
                f"{spec.amount / 2:g}; chroma unchanged")
    if spec.kind == "white":
        return f"each luma sample set to {top} with probability {spec.amount:g}; chroma unchanged"
    if spec.kind == "black":
        return f"each luma sample set to 0 with probability {spec.amount:g}; chroma unchanged"
    if spec.kind == "gaussian":
        return (f"Gaussian noise of sigma {spec.amount:g} (8-bit code values) added to every sample of every "
                f"plane, rounded and clipped to 0..{top}")
    return (f"{int(spec.amount)} squares per frame (side a tenth of the shorter side) filled with uniform random "
            f"values in every plane")


