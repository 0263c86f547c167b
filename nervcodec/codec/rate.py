"""The rate planner: a target in bits per pixel -> a parameter budget.

The file is header + keyframes + entropy-coded weights.  8-bit weights of a
fitted model entropy-code to about ``BITS_PER_PARAM[model][bits]`` bits each,
scales included (measured on people_qcif_48f at 150 epochs: NeRV 6.6 and
D-NeRV 7.6 bits per 8-bit weight; D-NeRV's many small tensors code less well).
"""
from __future__ import annotations

from ..errors import ConfigError

__all__ = ["BITS_PER_PARAM", "bytes_for_bpp", "params_for_bytes"]

BITS_PER_PARAM = {"nerv": {8: 6.6, 7: 5.7, 6: 4.8}, "dnerv": {8: 7.6, 7: 6.6, 6: 5.6}}


def bytes_for_bpp(bpp: float, pixels: int) -> int:
    return int(bpp * pixels / 8)


def params_for_bytes(weight_bytes: int, bits: int, model: str = "nerv") -> int:
    per = BITS_PER_PARAM.get(model, BITS_PER_PARAM["nerv"]).get(bits, bits - 0.4)
    n = int(weight_bytes * 8 / per)
    if n < 1000:
        raise ConfigError(f"the target rate leaves {weight_bytes} bytes for the network (about {n} parameters): "
                          f"too few; raise --bpp")
    return n
