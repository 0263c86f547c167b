"""The weights section: quantized tensors -> entropy-coded bytes, and back.

Format 2 payload (integers LEB128): ``tensor_count``, then for each floating tensor
of the model's ``state_dict`` in order: ``groups`` (1 for one step per tensor, or
the size of the first axis for one per output channel), ``step`` as ``groups``
little-endian float16 values, then the tensor's zero-centred signed symbols,
entropy-coded (see :mod:`nervcodec.entropy`, signed form).  The decoder computes
``w = step * q`` in float32.

Format 1 (files written before the rate-aware fit) stored ``scales``, ``lo`` and
``step`` float16 arrays and unsigned symbols in ``[0, 2^B - 1]`` (``B`` = the
header's quantization byte), dequantized as ``lo + step * q``; those files still
decode.

Names and shapes are not stored: the decoder rebuilds the network from the
header's configuration and checks the counts against it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Tuple

import numpy as np
import torch

from ..bytesio import Reader, Writer
from ..entropy import METHODS, decode_symbols, encode_symbols
from ..errors import FormatError
from ..quant import QuantizedTensor, dequantize_tensor

__all__ = ["pack_weights", "unpack_weights", "quantized_tensors", "tensor_rates", "TensorRate", "signed_symbols"]


def signed_symbols(symbols: np.ndarray) -> bytes:
    """The coded bytes of one tensor's symbols in format 2 (what ``pack_weights`` codes by default)."""
    return encode_symbols(symbols, signed=True)


def pack_weights(items: List[Tuple[str, QuantizedTensor]],
                 encode: Callable[[np.ndarray], bytes] = signed_symbols) -> bytes:
    """The format-2 weights section of ``items``; ``encode`` codes one tensor's signed symbols (an
    encoder that has already coded them, to choose the step mode, passes its cached results)."""
    w = Writer().varint(len(items))
    for _, qt in items:
        if qt.lo is not None:
            raise ValueError("format 2 stores zero-centred symbols only")
        w.varint(qt.groups).raw(qt.step.astype("<f2").tobytes())
        w.raw(encode(qt.symbols))
    return w.getvalue()


@dataclass(frozen=True)
class TensorRate:
    """One tensor's share of the weights section."""

    name: str
    params: int
    bytes: int          # its steps, offsets and coded symbols
    method: str         # the entropy-coding method chosen for it

    @property
    def bits_per_param(self) -> float:
        return 8 * self.bytes / max(self.params, 1)


def _tensors(data: bytes, template: Mapping[str, torch.Tensor], major: int,
             bits: int) -> Iterator[Tuple[str, QuantizedTensor, int, int]]:
    """(name, quantized tensor, bytes it took, entropy method tag) for each coded tensor, in order."""
    r = Reader(data, "weights section")
    names = [n for n, t in template.items() if t.is_floating_point()]
    n = r.varint(1 << 20)
    if n != len(names):
        raise FormatError(f"weights section holds {n} tensors, the model has {len(names)}")
    signed = major >= 2
    for name in names:
        start = r.pos
        shape = tuple(template[name].shape)
        count = int(np.prod(shape)) if shape else 1
        groups = r.varint(max(shape[0], 1) if shape else 1)
        if groups != 1 and not (len(shape) > 1 and groups == shape[0]):
            raise FormatError(f"weights section: tensor {name} has {groups} scales, expected 1 or {shape[0]}")
        lo = None if signed else np.frombuffer(r.raw(2 * groups), "<f2").astype(np.float16)
        step = np.frombuffer(r.raw(2 * groups), "<f2").astype(np.float16)
        if not (np.isfinite(step).all() and (lo is None or np.isfinite(lo).all())):
            raise FormatError(f"weights section: tensor {name} has non-finite scales")
        method = data[r.pos] if r.remaining else -1
        sym = decode_symbols(r, count, signed=signed, shape=shape)
        if not signed and sym.size and (sym.min() < 0 or sym.max() > (1 << bits) - 1):
            raise FormatError(f"weights section: tensor {name} has symbols outside {bits}-bit range")
        if signed and sym.size and (sym.min() < -2 ** 30 or sym.max() > 2 ** 30):
            raise FormatError(f"weights section: tensor {name} has implausibly large symbols")
        yield name, QuantizedTensor(sym.reshape(shape).astype(np.int32), step, lo), r.pos - start, method
    r.expect_end()


def unpack_weights(data: bytes, template: Mapping[str, torch.Tensor], major: int = 2,
                   bits: int = 0) -> Dict[str, torch.Tensor]:
    """Decode a weights section of format ``major`` into a state dict shaped like ``template``
    (``bits``: format 1's symbol range, the header's quantization byte)."""
    out: Dict[str, torch.Tensor] = {name: dequantize_tensor(qt).to(template[name].dtype)
                                    for name, qt, _, _ in _tensors(data, template, major, bits)}
    for k, t in template.items():
        if k not in out:
            out[k] = t
    return out


def quantized_tensors(data: bytes, template: Mapping[str, torch.Tensor], major: int = 2,
                      bits: int = 0) -> List[Tuple[str, QuantizedTensor]]:
    """The section's tensors as stored: integer symbols and steps, before dequantization (to re-code
    a file's symbols with another coder, or to study them)."""
    return [(name, qt) for name, qt, _, _ in _tensors(data, template, major, bits)]


def tensor_rates(data: bytes, template: Mapping[str, torch.Tensor], major: int = 2,
                 bits: int = 0) -> List[TensorRate]:
    """What each tensor costs in a weights section (for ``info``)."""
    return [TensorRate(name, int(qt.symbols.size), nbytes, METHODS.get(tag, str(tag)))
            for name, qt, nbytes, tag in _tensors(data, template, major, bits)]
