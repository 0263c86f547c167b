"""The rate planner: a target in bits per pixel -> a parameter budget.

The file is header + keyframes + entropy-coded weights.  Weights of a fitted
model entropy-code to about ``spec.bits_per_weight(bits)`` bits each, scales
included; each model's spec carries its measured figures (nervcodec.model).
"""
from __future__ import annotations

from ..errors import ConfigError
from ..model import ModelSpec

__all__ = ["bytes_for_bpp", "params_for_bytes"]


def bytes_for_bpp(bpp: float, pixels: int) -> int:
    return int(bpp * pixels / 8)


def params_for_bytes(weight_bytes: int, bits: int, spec: ModelSpec) -> int:
    per = spec.bits_per_weight(bits)
    n = int(weight_bytes * 8 / per)
    if n < 1000:
        raise ConfigError(f"the target rate leaves {weight_bytes} bytes for the network (about {n} parameters): "
                          f"too few; raise --bpp")
    return n
