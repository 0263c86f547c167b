"""The weights section: float tensors -> quantized symbols -> entropy-coded bytes, and back.

Payload layout (integers LEB128): ``tensor_count``, then for each floating
tensor of the model's ``state_dict`` in order: ``scales`` (the number of
(lo, step) pairs: 1 for per-tensor, or the size of the first axis for
per-output-channel quantization, chosen per tensor by the encoder), ``lo`` and ``step`` as
float16 arrays, then the entropy-coded symbols (see :mod:`nervcodec.entropy`).
Names and shapes are not stored: the decoder rebuilds the network from the
header's configuration and checks the counts against it.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np
import torch

from ..bytesio import Reader, Writer
from ..entropy import decode_symbols, encode_symbols
from ..errors import FormatError
from ..quant import QuantizedTensor, dequantize_tensor

__all__ = ["pack_weights", "unpack_weights"]


def pack_weights(items: List[Tuple[str, QuantizedTensor]],
                 encode: Callable[[np.ndarray], bytes] = encode_symbols) -> bytes:
    """The weights section of ``items``; ``encode`` codes one tensor's symbols (an encoder that has
    already coded them, to choose the scale mode, passes its cached results)."""
    w = Writer().varint(len(items))
    for _, qt in items:
        w.varint(qt.lo.size)
        w.raw(qt.lo.astype("<f2").tobytes()).raw(qt.step.astype("<f2").tobytes())
        w.raw(encode(qt.symbols))
    return w.getvalue()


def unpack_weights(data: bytes, template: Mapping[str, torch.Tensor], bits: int) -> Dict[str, torch.Tensor]:
    """Decode the weights section into a state dict shaped like ``template``."""
    r = Reader(data, "weights section")
    names = [n for n, t in template.items() if t.is_floating_point()]
    n = r.varint(1 << 20)
    if n != len(names):
        raise FormatError(f"weights section holds {n} tensors, the model has {len(names)}")
    out: Dict[str, torch.Tensor] = {}
    levels = (1 << bits) - 1
    for name in names:
        shape = tuple(template[name].shape)
        count = int(np.prod(shape)) if shape else 1
        scales = r.varint(max(shape[0], 1) if shape else 1)
        if scales != 1 and not (len(shape) > 1 and scales == shape[0]):
            raise FormatError(f"weights section: tensor {name} has {scales} scales, expected 1 or {shape[0]}")
        lo = np.frombuffer(r.raw(2 * scales), "<f2").astype(np.float16)
        step = np.frombuffer(r.raw(2 * scales), "<f2").astype(np.float16)
        if not (np.isfinite(lo).all() and np.isfinite(step).all()):
            raise FormatError(f"weights section: tensor {name} has non-finite scales")
        sym = decode_symbols(r, count)
        if sym.size and (sym.min() < 0 or sym.max() > levels):
            raise FormatError(f"weights section: tensor {name} has symbols outside {bits}-bit range")
        qt = QuantizedTensor(sym.reshape(shape).astype(np.int32), lo, step, bits)
        out[name] = dequantize_tensor(qt).to(template[name].dtype)
    r.expect_end()
    for k, t in template.items():
        if k not in out:
            out[k] = t
    return out
