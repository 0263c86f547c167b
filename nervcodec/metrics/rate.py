"""Bits per pixel, always from the size of the file on disk.

Estimated bits (entropy of the symbols, sizes of tensors) understate what a
user stores; every codec in a comparison is charged for its whole output file,
container included, so nobody's overhead is hidden.
"""
from __future__ import annotations

import os

from ..errors import InputError

__all__ = ["bits_per_pixel", "file_bpp"]


def bits_per_pixel(num_bytes: int, frames: int, width: int, height: int) -> float:
    """bytes x 8 / (frames x width x height): luma pixels, as the NeRV and codec literature count them."""
    pixels = int(frames) * int(width) * int(height)
    if pixels <= 0:
        raise ValueError(f"no pixels to divide by ({frames} frames of {width}x{height})")
    return int(num_bytes) * 8.0 / pixels


def file_bpp(path: str, frames: int, width: int, height: int) -> float:
    """:func:`bits_per_pixel` of the file at ``path``."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InputError(f"cannot read the size of {path}: {exc.strerror or exc}") from exc
    return bits_per_pixel(size, frames, width, height)
