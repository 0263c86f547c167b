"""Uniform affine quantization with a scale and offset per output channel or per tensor.

Each group ``g`` of a tensor (an output channel: a slice along the first axis,
or the whole tensor) gets ``w ~ lo[g] + step[g] * q`` with integer symbols
``q in [0, 2^b - 1]``: 2^b - 1 steps span [min, max] exactly (the reference
NeRV code divides by 2^b and so needs 2^b + 1 levels, one more than b bits hold).

Per-channel scales cut the error of channels with small ranges, but they cost
4 bytes each and spread every channel's symbols over the whole alphabet, which
raises their entropy.  :func:`quantize_auto` therefore codes both and keeps the
one that is better in the rate-distortion sense (lower ``bits/weight +
0.5 log2(MSE)``, the quantity that stays constant along a high-rate RD curve).
On NeRV's stem, whose 'channels' are rows of 26 weights, per-tensor wins by
20% in rate for 0.05 dB.

``lo`` and ``step`` are stored as float16, so they are rounded first (``lo``
down, ``step`` up) and the symbols computed against the rounded values: the
bound |w - w'| <= step / 2 then holds for the values the decoder actually uses.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

__all__ = ["QuantizedTensor", "quantize_tensor", "quantize_auto", "dequantize_tensor", "quantize_state",
           "dequantize_state"]


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer symbols of one tensor plus what dequantization needs."""

    symbols: np.ndarray        # int32, shape of the tensor
    lo: np.ndarray             # float16, (channels,) or (1,)
    step: np.ndarray           # float16, same shape as lo
    bits: int

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.symbols.shape)

    @property
    def per_channel(self) -> bool:
        return self.lo.size > 1 or (self.symbols.ndim > 1 and self.lo.size == self.symbols.shape[0])


def _f16_down(x: np.ndarray) -> np.ndarray:
    h = x.astype(np.float16)
    bad = h.astype(np.float64) > x
    h[bad] = np.nextafter(h[bad], np.float16(-np.inf))
    return h


def _f16_up(x: np.ndarray) -> np.ndarray:
    h = x.astype(np.float16)
    bad = h.astype(np.float64) < x
    h[bad] = np.nextafter(h[bad], np.float16(np.inf))
    return h


def quantize_tensor(w: torch.Tensor | np.ndarray, bits: int = 8, per_channel: bool = True) -> QuantizedTensor:
    """Quantize one tensor (per output channel if asked and it has more than one dimension)."""
    a = w.detach().cpu().double().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, np.float64)
    levels = (1 << bits) - 1
    flat = a.reshape(a.shape[0], -1) if a.ndim > 1 and per_channel else a.reshape(1, -1)
    if flat.size == 0:
        return QuantizedTensor(np.zeros(a.shape, np.int32), np.zeros(1, np.float16), np.zeros(1, np.float16), bits)
    mn, mx = flat.min(axis=1), flat.max(axis=1)
    lo = _f16_down(mn)
    span = np.maximum(mx - lo.astype(np.float64), 0.0)
    step = _f16_up(span / levels)
    # a constant channel still needs a positive step (any value reproduces it exactly)
    tiny = np.float16(2.0 ** -24)
    step = np.where(step.astype(np.float64) > 0, step, tiny).astype(np.float16)
    # lo in float16 may be far below mn when mn is huge; fp16 range bounds are checked by the caller
    lo32, step32 = lo.astype(np.float32), step.astype(np.float32)
    q = np.rint((flat - lo32[:, None].astype(np.float64)) / step32[:, None].astype(np.float64))
    q = np.clip(q, 0, levels).astype(np.int32)
    return QuantizedTensor(q.reshape(a.shape), lo, step, bits)


def dequantize_tensor(qt: QuantizedTensor) -> torch.Tensor:
    """w' = lo + step * q, computed in float32 the same way on every machine."""
    q = qt.symbols
    flat = q.reshape(qt.lo.size, -1)
    lo = qt.lo.astype(np.float32)[:, None]
    step = qt.step.astype(np.float32)[:, None]
    w = (flat.astype(np.float32) * step + lo).astype(np.float32)
    return torch.from_numpy(w.reshape(q.shape).copy())


def quantize_auto(w: torch.Tensor, bits: int, coded_size: Callable[[np.ndarray], int]) -> QuantizedTensor:
    """Per-channel or per-tensor, whichever is better in rate-distortion (see module docstring)."""
    cands = [quantize_tensor(w, bits, per_channel=False)]
    if w.dim() > 1 and w.shape[0] > 1:
        cands.append(quantize_tensor(w, bits, per_channel=True))
    if len(cands) == 1:
        return cands[0]
    ref = w.detach().cpu().float()
    best, best_j = cands[0], math.inf
    for qt in cands:
        mse = float((dequantize_tensor(qt) - ref).square().mean())
        bits_total = 8 * coded_size(qt.symbols) + 32 * qt.lo.size
        j = bits_total / max(ref.numel(), 1) + 0.5 * math.log2(max(mse, 1e-30))
        if j < best_j:
            best, best_j = qt, j
    return best


def quantize_state(state: Mapping[str, torch.Tensor], bits: int = 8,
                   coded_size: Optional[Callable[[np.ndarray], int]] = None) -> List[Tuple[str, QuantizedTensor]]:
    """Quantize every floating tensor of a state dict, in its order (which the decoder reproduces).

    With ``coded_size`` (symbols -> bytes), each tensor's mode is chosen by :func:`quantize_auto`;
    without it, every tensor with more than one dimension is quantized per channel."""
    out = []
    for name, t in state.items():
        if not t.is_floating_point():
            continue
        out.append((name, quantize_auto(t, bits, coded_size) if coded_size else quantize_tensor(t, bits)))
    return out


def dequantize_state(items: List[Tuple[str, QuantizedTensor]]) -> Dict[str, torch.Tensor]:
    return {name: dequantize_tensor(qt) for name, qt in items}
