"""The rate planner: a target in bits per pixel -> a parameter budget.

The file is header + keyframes + entropy-coded weights.  8-bit weights of a
fitted NeRV-family model entropy-code to about ``BITS_PER_PARAM`` bits each
(measured on the dev clips, see docs/benchmarks.md), plus 4 bytes of float16
scale and offset per output channel, folded into the same figure.
"""
from __future__ import annotations

from ..errors import ConfigError

__all__ = ["BITS_PER_PARAM", "bytes_for_bpp", "params_for_bytes"]

BITS_PER_PARAM = {8: 6.6, 7: 5.7, 6: 4.8}


def bytes_for_bpp(bpp: float, pixels: int) -> int:
    return int(bpp * pixels / 8)


def params_for_bytes(weight_bytes: int, bits: int) -> int:
    per = BITS_PER_PARAM.get(bits, bits - 0.4)
    n = int(weight_bytes * 8 / per)
    if n < 1000:
        raise ConfigError(f"the target rate leaves {weight_bytes} bytes for the network (about {n} parameters): "
                          f"too few; raise --bpp")
    return n
