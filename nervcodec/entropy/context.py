"""Context coding of 3-D symbol arrays (latent maps): each symbol's model is picked by its decoded neighbours.

A factorised model codes every symbol of a latent map with one distribution, but latents are not
alike: where the picture is flat they are zero in whole regions, at edges and moving objects they
are large together.  This method splits a ``(T, H, W)`` array into four passes that the decoder can
run as whole-array operations, and codes each symbol under one of a few models chosen by the
magnitudes of neighbours decoded in earlier passes:

====  =========================================  =========================================
pass  symbols                                    context (sum of |decoded neighbours|)
====  =========================================  =========================================
0     even frames, anchors ((y + x) even)        none (one model)
1     even frames, the rest                      the 4 spatial neighbours (anchors, decoded)
2     odd frames, anchors                        the same position in frames t - 1 and t + 1
3     odd frames, the rest                       4 spatial neighbours + frames t - 1 and t + 1
====  =========================================  =========================================

Neighbours outside the array or not yet decoded count as zero, so one formula serves every pass.
The sum falls into one of ``len(CLASS_FLOOR)`` classes (integer thresholds), and the symbols of
each (pass, class) are coded, in raster order, as an ordinary array by :func:`encode_symbols`
(the cheapest of its integer-table models): no float reaches the decoder's probabilities, so
they are bit-identical everywhere.  Everything the decoder needs for a class (which symbols, how
many) follows from what it has decoded; only the coded arrays are stored, pass by pass, class by
class, skipping empty classes.

On the latents of the grids fitted at 0.25-1.0 bpp to people_qcif_48f this codes the latents in
12-13 % fewer bytes than the best single model per tensor (the same symbols; measured exactly).

The decoder's work follows the symbols that are not zero, not the array's size (latent maps are
mostly zero): a pass's contexts are scattered from the nonzero symbols of the passes before it, the
few positions they reach are sorted by class, and every other position is class 0 without a look.
On carphone_pristine's latent maps (120 x 144 x 176 at full resolution) this decodes in a fraction of
the time of a walk over whole arrays (docs/benchmarks.md, "Decoding speed of the grids").  The encoder
knows every symbol and forms the same groups from whole arrays (:func:`_groups`), in time that follows
the array's size: in the middle of a fit the latents are far from sparse, and the rate controller
measures them every few steps.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

__all__ = ["CLASS_FLOOR", "MIN_CONTEXT_SIZE", "encode_context", "decode_context",
           "context_entropy_bits"]

# class k holds context sums >= CLASS_FLOOR[k] (about sqrt(2) apart: the classes are scales)
CLASS_FLOOR = np.array([0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128], np.int64)
MIN_CONTEXT_SIZE = 512      # smaller arrays gain too little to pay for the classes' side information


# context sum -> class: CLASS_FLOOR as a table (every sum from the last floor on is the last class)
_CLASS_OF = (np.searchsorted(CLASS_FLOOR, np.arange(CLASS_FLOOR[-1] + 1), side="right") - 1).astype(np.uint8)


# the six neighbours of a symbol, as (frame, row, column) offsets: left, right, up, down, previous, next
_NEIGHBOURS = ((0, 0, -1), (0, 0, 1), (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0))

def decode_context(shape: Tuple[int, int, int], read: Callable[[int], np.ndarray]) -> np.ndarray:
    """Inverse of :func:`encode_context`: walk the (pass, class) groups in coding order, ``read(count)``
    decoding the next coded array of ``count`` symbols; returns the array (int64).

    Only the symbols that are not zero cost work beyond the zeroed output: a pass's contexts are
    summed from the nonzero symbols decoded before it (each adds its capped magnitude to those of
    its six neighbours that are in the pass), so every position they do not reach is in class 0,
    which is located only when it holds a symbol that is not zero."""
    t, h, w = shape
    hw = h * w
    out = np.zeros(t * hw, np.int64)
    nz_f, nz_y, nz_x, nz_m = (np.zeros(0, np.int64),) * 4   # nonzero symbols decoded so far, capped |value|
    anchor = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0).ravel()
    for parity, spots in ((0, anchor), (0, ~anchor), (1, anchor), (1, ~anchor)):
        frames = np.arange(parity, t, 2)                # the pass's frames; its positions in raster order:
        where = np.flatnonzero(spots)                   # frame by frame, row by row (index k * ns + j)
        ns, n = where.size, frames.size * where.size
        if not n:
            continue
        rank = np.full(hw, -1, np.int64)                # position in a frame -> its index among the spots
        rank[where] = np.arange(ns)
        at, add = [], []
        for df, dy, dx in _NEIGHBOURS:                  # what each decoded symbol adds to its neighbours
            f, y, x = nz_f + df, nz_y + dy, nz_x + dx
            ok = (f >= 0) & (f < t) & (f % 2 == parity) & (y >= 0) & (y < h) & (x >= 0) & (x < w)
            j = rank[y[ok] * w + x[ok]]
            hit = j >= 0
            at.append((f[ok][hit] // 2) * ns + j[hit])
            add.append(nz_m[ok][hit])
        reached, inv = np.unique(np.concatenate(at), return_inverse=True)       # ascending: raster order
        ctx = np.bincount(inv, weights=np.concatenate(add).astype(np.float64)).astype(np.int64)
        cls = _CLASS_OF[np.minimum(ctx, CLASS_FLOOR[-1])]       # every one >= 1: magnitudes are >= 1
        counts = np.bincount(cls, minlength=len(CLASS_FLOOR))
        counts[0] = n - reached.size
        order = reached[np.argsort(cls, kind="stable")]
        ends = np.cumsum(counts[1:])

        def pick(k: int) -> np.ndarray:
            """Class ``k``'s indices in the pass, in raster order (class 0's: every position not reached)."""
            if k:
                return order[ends[k - 1] - counts[k]:ends[k - 1]]
            rest = np.ones(n, bool)
            rest[reached] = False
            return np.flatnonzero(rest)

        found = []
        for k in np.flatnonzero(counts).tolist():
            sym = read(int(counts[k]))
            nz = np.flatnonzero(sym)
            if nz.size:             # only a class holding a nonzero symbol is located
                found.append(_locate(pick(k)[nz], frames, where) + (sym[nz],))
        if found:
            f, p, v = (np.concatenate(a) for a in zip(*found))
            out[f * hw + p] = v
            nz_f, nz_y, nz_x = np.concatenate([nz_f, f]), np.concatenate([nz_y, p // w]), np.concatenate([nz_x, p % w])
            nz_m = np.concatenate([nz_m, np.minimum(np.abs(v), CLASS_FLOOR[-1])])
    return out.reshape(shape)


def _locate(pick: np.ndarray, frames: np.ndarray, where: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A pass's indices (frame by frame, spot by spot) -> (frames, positions within a frame)."""
    return frames[pick // where.size], where[pick % where.size]


def _groups(symbols: np.ndarray) -> List[np.ndarray]:
    """The (pass, class) groups of a 3-D array's symbols, in coding order: what :func:`decode_context`
    walks, computed by the encoder (which knows every symbol) from whole arrays, in time that follows
    the array's size, not its nonzero symbols (a fit's rate checks see latents that are not yet sparse).

    A pass's context at each of its positions is the sum of its six neighbours' capped magnitudes,
    counting only the neighbours of earlier passes: in the same frame the anchors when the pass holds
    the rest, and the even frames around an odd one; its classes split the pass's raster order with a
    stable sort.  The same groups as the decoder's walk (tests compare them on random arrays)."""
    t, h, w = symbols.shape
    rows = symbols.reshape(t, h * w)
    mag = np.minimum(np.abs(symbols), CLASS_FLOOR[-1]).astype(np.int16)     # sums stay under 6 x 128
    anchor = (np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0
    groups: List[np.ndarray] = []
    for parity, rest in ((0, False), (0, True), (1, False), (1, True)):
        nf = len(range(parity, t, 2))
        where = np.flatnonzero(~anchor if rest else anchor)
        if not nf or not where.size:
            continue
        ctx = np.zeros((nf, h, w), np.int16)
        if rest:                                        # the frames' anchors, decoded in the pass before
            a = mag[parity::2] * anchor
            ctx[:, :, 1:] += a[:, :, :-1]
            ctx[:, :, :-1] += a[:, :, 1:]
            ctx[:, 1:] += a[:, :-1]
            ctx[:, :-1] += a[:, 1:]
        if parity:                                      # the even frames before and after (all decoded)
            even = mag[0::2]
            ctx += even[:nf]
            ctx[:even.shape[0] - 1] += even[1:nf + 1]
        cls = _CLASS_OF[np.minimum(ctx.reshape(nf, -1)[:, where], CLASS_FLOOR[-1])].ravel()
        vals = rows[parity::2][:, where].ravel()
        order = np.argsort(cls, kind="stable")          # by class, raster order within each
        counts = np.bincount(cls, minlength=len(CLASS_FLOOR))
        groups += [g for g in np.split(vals[order], np.cumsum(counts)[:-1]) if g.size]
    return groups


def encode_context(symbols: np.ndarray, code: Callable[[np.ndarray], bytes]) -> bytes:
    """The concatenated codes (``code``: one array's bytes) of a 3-D array's (pass, class) groups."""
    return b"".join(code(g) for g in _groups(np.asarray(symbols, np.int64)))


def context_entropy_bits(symbols: np.ndarray, side_bits: float = 64.0) -> float:
    """About what :func:`encode_context` spends: each group's empirical entropy plus ``side_bits``
    (its model's few integers and the range coder's tail); for the rate controller."""
    bits = 0.0
    for g in _groups(np.asarray(symbols, np.int64)):
        counts = np.bincount(g - g.min()).astype(np.float64)
        used = counts[counts > 0]
        if used.size == 1:      # one value (a class of zeros): a tag and the value
            bits += 16.0
            continue
        bits += float(-(used * np.log2(used / g.size)).sum()) + side_bits
    return bits
