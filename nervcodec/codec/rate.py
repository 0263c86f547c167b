"""The rate planner: a target in bits per pixel -> a network size and a budget for its weights.

The file is header + keyframes + entropy-coded weights.  The planner measures the
header and keyframes, and what is left is the weights' budget.  The rule that
turns it into a network, and why:

* Rate-aware fitting (the default): the network gets ``budget / LEARNED_BITS_PER_PARAM``
  parameters, and the fit's lambda is then steered so that the coded weights meet
  the budget (:mod:`nervcodec.quant.qat`).  Size and lambda are chosen together: the
  size fixes how many weights there are, lambda how precisely each is kept.  4 bits
  per parameter is where the rate-aware D-NeRV fits on the dev clips keep the
  quantized network within about 0.1 dB of the float one (0.04-0.12 dB, measured in
  docs/benchmarks.md).  It is a measured design point, not an optimum: other
  figures were not swept, and at 150 epochs the network's size matters little there.
* ``--quant-bits B`` (quantization after fitting): each weight costs about
  ``spec.bits_per_weight(B)`` bits, measured per model (nervcodec.model).
"""
from __future__ import annotations

from typing import Optional

from ..errors import ConfigError
from ..model import ModelSpec

__all__ = ["bytes_for_bpp", "bits_per_param", "params_for_bytes", "LEARNED_BITS_PER_PARAM"]

LEARNED_BITS_PER_PARAM = 4.0


def bytes_for_bpp(bpp: float, pixels: int) -> int:
    return int(bpp * pixels / 8)


def bits_per_param(quant_bits: Optional[int], spec: ModelSpec) -> float:
    return LEARNED_BITS_PER_PARAM if quant_bits is None else spec.bits_per_weight(quant_bits)


def params_for_bytes(weight_bytes: int, quant_bits: Optional[int], spec: ModelSpec) -> int:
    per = bits_per_param(quant_bits, spec)
    n = int(weight_bytes * 8 / per)
    if weight_bytes <= 0:
        raise ConfigError("the target rate does not even cover the keyframes and the header, so nothing is left for "
                          "the network; raise --bpp (or lower --keyframe-share)")
    if n < 1000:
        raise ConfigError(f"the target rate leaves {weight_bytes} bytes for the network (about {n} parameters): "
                          f"too few; raise --bpp")
    return n
