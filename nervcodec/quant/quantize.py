"""Uniform scalar quantization: zero-centred integer symbols ``q`` and a step per tensor or output channel.

``w ~ step[g] * q`` with ``q = round(w / step[g])`` a signed integer of no fixed
range: the step alone sets the precision, and the entropy coder, not a bit depth,
decides what each symbol costs.  A zero weight stays exactly zero, and symbols
concentrate around 0, which the parametric entropy models (Laplace, Gaussian)
describe in four small integers.

Steps come from one of two places:

* the rate-aware fit (:mod:`nervcodec.quant.qat`) learns one step per tensor by
  distortion + lambda x rate and hands it over (:func:`quantize_with_step`);
* ``--quant-bits B`` quantizes a float model after fitting with ``2^(B-1) - 1``
  levels on each side of zero over the largest magnitude, per tensor or per output
  channel, whichever is better in the rate-distortion sense (:func:`quantize_fixed`).

Steps are stored as float16 and rounded *up* to it before the symbols are computed,
so the decoder multiplies by exactly the step the encoder used.  Dequantization is
one float32 multiplication (exact IEEE arithmetic: identical on every machine).

Files of format 1 used an affine quantizer ``w ~ lo[g] + step[g] * q`` with
``q in [0, 2^B - 1]``; :class:`QuantizedTensor` with ``lo`` set is that, kept so
those files still decode.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

__all__ = ["QuantizedTensor", "quantize_with_step", "quantize_fixed", "dequantize_tensor", "dequantize_state",
           "f16_up", "MIN_STEP"]

MIN_STEP = float(np.float16(2.0 ** -24))   # the smallest positive float16


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer symbols of one tensor plus what dequantization needs."""

    symbols: np.ndarray                 # int32, shape of the tensor; signed unless ``lo`` is set
    step: np.ndarray                    # float16, (groups,): 1 for per-tensor, or the first axis's size
    lo: Optional[np.ndarray] = None     # float16 offsets of format 1's affine quantizer, else None

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.symbols.shape)

    @property
    def groups(self) -> int:
        return int(self.step.size)


def f16_up(x: np.ndarray | float) -> np.ndarray:
    """The smallest float16 >= x (positive), element-wise."""
    x = np.atleast_1d(np.asarray(x, np.float64))
    h = np.clip(x, MIN_STEP, 65504.0).astype(np.float16)
    bad = h.astype(np.float64) < x
    h[bad] = np.nextafter(h[bad], np.float16(np.inf))
    return h


def _groups(a: np.ndarray, per_channel: bool) -> np.ndarray:
    return a.reshape(a.shape[0], -1) if a.ndim > 1 and per_channel else a.reshape(1, -1)


def _as_array(w: torch.Tensor | np.ndarray) -> np.ndarray:
    return w.detach().cpu().float().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, np.float32)


def quantize_with_step(w: torch.Tensor | np.ndarray, step: np.ndarray | float) -> QuantizedTensor:
    """``q = round(w / step)`` in float32 (the arithmetic the rate-aware fit simulated), with ``step``
    one float16 value or one per output channel."""
    a = _as_array(w)
    s = np.atleast_1d(np.asarray(step, np.float16))
    flat = _groups(a, s.size > 1)
    if s.size not in (1, flat.shape[0]):
        raise ValueError(f"{s.size} steps for a tensor of shape {a.shape}")
    q = np.rint(flat / s.astype(np.float32)[:, None])
    if q.size and np.abs(q).max() > 2 ** 30:
        raise ValueError("quantization step too small for this tensor's range")
    return QuantizedTensor(q.astype(np.int32).reshape(a.shape), s)


def _fixed_step(a: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    levels = (1 << (bits - 1)) - 1
    flat = _groups(a, per_channel)
    peak = np.abs(flat).max(axis=1) if flat.size else np.zeros(1)
    return f16_up(np.where(peak > 0, peak / levels, MIN_STEP))


def quantize_fixed(w: torch.Tensor, bits: int,
                   coded_size: Optional[Callable[[np.ndarray], int]] = None) -> QuantizedTensor:
    """``2^(bits-1) - 1`` levels per side over the largest magnitude; per output channel or per tensor,
    whichever has the lower ``bits/weight + 0.5 log2(MSE)`` (the quantity that stays constant along a
    high-rate RD curve) when ``coded_size`` (symbols -> bytes) is given, else per tensor."""
    a = _as_array(w)
    cands = [quantize_with_step(a, _fixed_step(a, bits, False))]
    if coded_size is not None and a.ndim > 1 and a.shape[0] > 1:
        cands.append(quantize_with_step(a, _fixed_step(a, bits, True)))
    if len(cands) == 1:
        return cands[0]
    ref = torch.from_numpy(a)
    best, best_j = cands[0], math.inf
    for qt in cands:
        mse = float((dequantize_tensor(qt) - ref).square().mean())
        total = 8 * coded_size(qt.symbols) + 16 * qt.groups
        j = total / max(a.size, 1) + 0.5 * math.log2(max(mse, 1e-30))
        if j < best_j:
            best, best_j = qt, j
    return best


def dequantize_tensor(qt: QuantizedTensor) -> torch.Tensor:
    """``step * q`` (``lo + step * q`` for format 1), in float32 the same way on every machine."""
    w = qt.symbols.astype(np.float32, order="C")      # the one new array; the rest works in place
    flat = w.reshape(qt.step.size, -1)
    flat *= qt.step.astype(np.float32)[:, None]
    if qt.lo is not None:
        flat += qt.lo.astype(np.float32)[:, None]
    return torch.from_numpy(w)


def dequantize_state(items: List[Tuple[str, QuantizedTensor]]) -> Dict[str, torch.Tensor]:
    return {name: dequantize_tensor(qt) for name, qt in items}
