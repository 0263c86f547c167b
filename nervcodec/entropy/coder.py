"""Lossless coding of integer symbol arrays with constriction's range coder.

Each array is coded on its own under the cheapest of a few models, chosen by
actually coding it (so the choice is exact, not estimated):

* ``raw`` (tag 0): the symbols bit-packed at the alphabet's width; best for tiny tensors.
* ``categorical`` (tag 1): an adaptive-free categorical model built from the
  array's own histogram over [min, max], sent as LEB128 counts; the payload is
  range-coded.  The decoder rebuilds the model from the same integers, so the
  probabilities are bit-identical on every machine (no floats cross the wire).
* ``sparse`` (tag 2): the same model with the histogram sent as (gap, count)
  pairs, for wide alphabets with few distinct values.
* ``constant`` (tag 3): every symbol equal; only the value is sent.
* ``laplace`` (tag 4): a two-sided geometric (discrete Laplace) model with an
  integer centre and a 16-bit fixed-point decay ``r``; its table is computed by
  repeated integer multiplication, so it too is bit-identical everywhere.  It
  costs four small integers instead of a histogram: the winner for mid-sized
  tensors (a few hundred to a few thousand weights).
* ``gauss`` (tag 5): a discretised Gaussian with an integer centre and a 24-bit
  fixed-point ``a = exp(-1 / (2 sigma^2))``; its table ``c[d] ~ 2^24 a^(d^2)`` is built
  by the recurrence ``c[d+1] = c[d] a^(2d+1)`` in integer steps, so it is as portable
  as the Laplace table.  Weights fitted with a rate term have lighter tails than a
  Laplace; this model is the better one for many of their tensors.
* ``context`` (tag 6, signed 3-D arrays of at least ``MIN_CONTEXT_SIZE`` symbols: latent maps): the
  array split into passes and classes by the magnitudes of already-decoded neighbours, each class
  coded as an array of its own by the models above (see :mod:`nervcodec.entropy.context`).

Symbols are non-negative unless the caller says they are signed (the weights of
format 2 are zero-centred integers): then every ``lo`` below is a zigzag varint
(0, -1, 1, -2, ... -> 0, 1, 2, 3, ...).  The caller knows which, from the format version.

Layout of one coded array (after the tag byte), all integers LEB128:
raw: ``lo, width_bits, packed bytes``; categorical: ``lo, span, counts[span+1],
words, u32 words``; sparse: ``lo, span, k, (gap, count) * k, words, u32 words``;
constant: ``value``; laplace: ``lo, span, centre, r, words, u32 words``; gauss: ``lo, span,
centre, a, words, u32 words``; context: the (pass, class) arrays' codes, each with its own tag.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..bytesio import Reader, Writer
from ..errors import FormatError
from .context import MIN_CONTEXT_SIZE, decode_context, encode_context

__all__ = ["encode_symbols", "decode_symbols", "METHODS"]

RAW, CATEGORICAL, SPARSE, CONSTANT, LAPLACE, GAUSS, CONTEXT = 0, 1, 2, 3, 4, 5, 6
METHODS = {RAW: "raw", CATEGORICAL: "categorical", SPARSE: "sparse", CONSTANT: "constant", LAPLACE: "laplace",
           GAUSS: "gauss", CONTEXT: "context"}
MAX_SPAN = 1 << 20
MAX_PARAMETRIC_SPAN = 4096
MAX_LO = 1 << 31


def _put_lo(w: Writer, lo: int, signed: bool) -> Writer:
    return w.svarint(lo) if signed else w.varint(lo)


def _get_lo(r: Reader, signed: bool) -> int:
    return r.svarint(MAX_LO) if signed else r.varint(MAX_LO)


def _constriction():
    import constriction  # imported lazily: only coding needs it
    return constriction


def _model(counts: np.ndarray):
    c = _constriction()
    return c.stream.model.Categorical(counts.astype(np.float64), perfect=False)


def _range_code(sym0: np.ndarray, counts: np.ndarray) -> np.ndarray:
    enc = _constriction().stream.queue.RangeEncoder()
    enc.encode(sym0.astype(np.int32, copy=False), _model(counts))
    return enc.get_compressed().astype("<u4")


def _encode_raw(flat: np.ndarray, lo: int, span: int, signed: bool) -> bytes:
    width = max(int(span).bit_length(), 1)
    vals = (flat - lo).astype(np.uint32)
    bits = ((vals[:, None] >> np.arange(width - 1, -1, -1, dtype=np.uint32)) & 1).astype(np.uint8)
    return _put_lo(Writer().u8(RAW), lo, signed).varint(width).raw(np.packbits(bits.ravel()).tobytes()).getvalue()


def _encode_categorical(flat: np.ndarray, lo: int, span: int, counts: np.ndarray, signed: bool) -> bytes:
    words = _range_code(flat - lo, counts)
    w = _put_lo(Writer().u8(CATEGORICAL), lo, signed).varint(span)
    for c in counts:
        w.varint(int(c))
    return w.varint(len(words)).raw(words.tobytes()).getvalue()


def _encode_sparse(flat: np.ndarray, lo: int, span: int, counts: np.ndarray, signed: bool) -> bytes:
    words = _range_code(flat - lo, counts)
    nz = np.flatnonzero(counts)
    w = _put_lo(Writer().u8(SPARSE), lo, signed).varint(span).varint(len(nz))
    prev = -1
    for i in nz:
        w.varint(int(i - prev - 1)).varint(int(counts[i]))
        prev = int(i)
    return w.varint(len(words)).raw(words.tobytes()).getvalue()


_R_ONE = 1 << 16
_PEAK = 1 << 24
# decay candidates: r = 2^16 * exp(-1/b) for Laplace scales b from 0.35 to ~2000
_R_GRID = sorted({min(int(round(_R_ONE * np.exp(-1.0 / b))), _R_ONE - 1) for b in np.geomspace(0.35, 2000, 96)})


def _laplace_tables(span: int, centre: int, rs: Sequence[int]) -> np.ndarray:
    """Row i: the integer table c[k] = max(1, floor(2^24 * (r_i/2^16)^|k - centre|)) over 0..span.

    Computed in exact integer steps (v <- (v * r) >> 16; v < 2^24 and r < 2^16 keep every
    product below 2^40), for all decays at once: one pass over the distances, not one per decay."""
    n = max(centre, span - centre) + 1
    r = np.asarray(rs, np.int64)
    side = np.empty((r.size, n), np.int64)
    v = np.full(r.size, _PEAK, np.int64)
    for d in range(n):  # at most 2^16 steps
        side[:, d] = np.maximum(v, 1)
        v = (v * r) >> 16
    return side[:, np.abs(np.arange(span + 1) - centre)]


def _laplace_counts(span: int, centre: int, r: int) -> np.ndarray:
    """The table of one decay ``r`` (what the decoder rebuilds from the stored integers)."""
    return _laplace_tables(span, centre, [r])[0]


_A_ONE = 1 << 24
# a = 2^24 * exp(-1 / (2 sigma^2)) for Gaussian sigmas from 0.3 to ~2000
_A_GRID = sorted({min(int(round(_A_ONE * np.exp(-0.5 / s ** 2))), _A_ONE - 1) for s in np.geomspace(0.3, 2000, 96)})


def _gauss_tables(span: int, centre: int, as_: Sequence[int]) -> np.ndarray:
    """Row i: c[k] = max(1, ~2^24 * a_i^((k - centre)^2)) over 0..span, by integer steps only:
    m <- a^(2d+1) and v <- v * m, each in 24-bit fixed point (products stay below 2^48)."""
    n = max(centre, span - centre) + 1
    a = np.asarray(as_, np.int64)
    a2 = (a * a) >> 24
    side = np.empty((a.size, n), np.int64)
    v = np.full(a.size, _PEAK, np.int64)
    m = a.copy()
    for d in range(n):
        side[:, d] = np.maximum(v, 1)
        v = (v * m) >> 24
        m = (m * a2) >> 24
    return side[:, np.abs(np.arange(span + 1) - centre)]


def _parametric(tag: int, flat: np.ndarray, lo: int, span: int, counts: np.ndarray, signed: bool) -> bytes:
    """Code under the family ``tag`` (laplace or gauss) centred on the mode, with the shape parameter
    that gives the smallest exact ideal code length of these counts."""
    centre = int(np.argmax(counts))
    grid, tables = (_R_GRID, _laplace_tables) if tag == LAPLACE else (_A_GRID, _gauss_tables)
    candidates = tables(span, centre, grid)
    logp = np.log2(candidates.astype(np.float64))
    bits = -(logp * counts).sum(axis=1) + counts.sum() * np.log2(candidates.sum(axis=1, dtype=np.float64))
    i = int(np.argmin(bits))
    best = grid[i]
    words = _range_code(flat - lo, candidates[i])
    w = _put_lo(Writer().u8(tag), lo, signed).varint(span).varint(centre).varint(best)
    return w.varint(len(words)).raw(words.tobytes()).getvalue()


def encode_symbols(symbols: np.ndarray, signed: bool = False) -> bytes:
    """Code an integer array (non-negative unless ``signed``); the decoder must know its element count
    (and, for a signed 3-D array, which may be context-coded, its shape)."""
    symbols = np.asarray(symbols)
    flat = symbols.ravel().astype(np.int64)
    if flat.size == 0:
        return Writer().u8(CONSTANT).varint(0).getvalue()
    lo, hi = int(flat.min()), int(flat.max())
    if (lo < 0 and not signed) or max(-lo, hi) > MAX_LO:
        raise ValueError("symbols must be non-negative" if lo < 0 and not signed else "symbols too large")
    if lo == hi:
        return _put_lo(Writer().u8(CONSTANT), lo, signed).getvalue()
    span = hi - lo
    if span > MAX_SPAN:
        raise ValueError(f"alphabet of {span + 1} symbols is too wide")
    counts = np.bincount(flat - lo, minlength=span + 1)
    candidates = [_encode_raw(flat, lo, span, signed)]
    if flat.size > 4:
        candidates.append(_encode_categorical(flat, lo, span, counts, signed))
        candidates.append(_encode_sparse(flat, lo, span, counts, signed))
        if span <= MAX_PARAMETRIC_SPAN:
            candidates.append(_parametric(LAPLACE, flat, lo, span, counts, signed))
            if signed:  # format 2 onwards
                candidates.append(_parametric(GAUSS, flat, lo, span, counts, signed))
    if signed and symbols.ndim == 3 and flat.size >= MIN_CONTEXT_SIZE:
        coded = encode_context(flat.reshape(symbols.shape), lambda g: encode_symbols(g, signed=True))
        candidates.append(bytes([CONTEXT]) + coded)
    return min(candidates, key=len)


def decode_symbols(r: Reader, count: int, signed: bool = False, shape: Optional[Tuple[int, ...]] = None
                   ) -> np.ndarray:
    """Read one coded array of ``count`` symbols (of ``shape``, when known) from ``r``, advancing it."""
    tag = r.u8()
    if tag == CONTEXT and signed and shape is not None and len(shape) == 3 and count >= MIN_CONTEXT_SIZE:
        return decode_context(tuple(shape), lambda n: decode_symbols(r, n, signed=True)).ravel()
    decoder: Dict[int, Callable[[Reader, int, bool], np.ndarray]] = {
        RAW: _decode_raw, CATEGORICAL: _decode_categorical, SPARSE: _decode_sparse, CONSTANT: _decode_constant,
        LAPLACE: _decode_laplace, **({GAUSS: _decode_gauss} if signed else {})}
    if tag not in decoder:
        raise FormatError(f"unknown entropy-coding method {tag} in {r.what}")
    return decoder[tag](r, count, signed)


def _decode_constant(r: Reader, count: int, signed: bool) -> np.ndarray:
    return np.full(count, _get_lo(r, signed), np.int64)


def _decode_raw(r: Reader, count: int, signed: bool) -> np.ndarray:
    lo = _get_lo(r, signed)
    width = r.varint(32)
    if width < 1:
        raise FormatError(f"{r.what}: raw symbols of width 0")
    nbytes = -(-count * width // 8)
    bits = np.unpackbits(np.frombuffer(r.raw(nbytes), np.uint8))[: count * width].reshape(count, width)
    weights = (np.uint64(1) << np.arange(width - 1, -1, -1, dtype=np.uint64))
    return (bits.astype(np.uint64) @ weights).astype(np.int64) + lo


def _read_words(r: Reader, counts: np.ndarray, lo: int, count: int, check_sum: bool = True) -> np.ndarray:
    if check_sum and int(counts.sum()) != count:
        raise FormatError(f"{r.what}: histogram does not match the tensor size")
    n_words = r.varint(r.remaining // 4)
    words = np.frombuffer(r.raw(4 * n_words), "<u4").astype(np.uint32)
    dec = _constriction().stream.queue.RangeDecoder(words)
    try:
        out = dec.decode(_model(counts), count)
    except Exception as exc:  # constriction raises plain Python errors on bad data
        raise FormatError(f"{r.what}: entropy-coded data is damaged ({exc})") from None
    return out.astype(np.int64) + lo


def _decode_categorical(r: Reader, count: int, signed: bool) -> np.ndarray:
    lo = _get_lo(r, signed)
    span = r.varint(min(MAX_SPAN, r.remaining))
    counts = np.array([r.varint(count) for _ in range(span + 1)], np.int64)
    return _read_words(r, counts, lo, count)


def _decode_sparse(r: Reader, count: int, signed: bool) -> np.ndarray:
    lo = _get_lo(r, signed)
    span = r.varint(MAX_SPAN)
    k = r.varint(min(span + 1, r.remaining))
    counts = np.zeros(span + 1, np.int64)
    pos = -1
    for _ in range(k):
        pos += r.varint(span) + 1
        if pos > span:
            raise FormatError(f"{r.what}: histogram index out of range")
        counts[pos] = r.varint(count)
    return _read_words(r, counts, lo, count)


def _decode_laplace(r: Reader, count: int, signed: bool) -> np.ndarray:
    lo = _get_lo(r, signed)
    span = r.varint(MAX_PARAMETRIC_SPAN)
    centre = r.varint(span)
    decay = r.varint(_R_ONE - 1)
    return _read_words(r, _laplace_counts(span, centre, decay), lo, count, check_sum=False)


def _decode_gauss(r: Reader, count: int, signed: bool) -> np.ndarray:
    lo = _get_lo(r, signed)
    span = r.varint(MAX_PARAMETRIC_SPAN)
    centre = r.varint(span)
    a = r.varint(_A_ONE - 1)
    return _read_words(r, _gauss_tables(span, centre, [a])[0], lo, count, check_sum=False)
