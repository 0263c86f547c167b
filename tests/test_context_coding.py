"""Context coding of latent maps (entropy method 6): exact round trips, the choice, the estimate, golden bytes."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nervcodec.bytesio import Reader
from nervcodec.entropy import decode_symbols, encode_symbols
from nervcodec.entropy.coder import CONTEXT
from nervcodec.entropy.context import CLASS_FLOOR, _groups, context_entropy_bits, decode_context
from nervcodec.errors import FormatError


def _clustered(shape, seed=0, density=0.08):
    """Latent-like maps: zero except in blobs that persist over a few frames, where values are large."""
    rng = np.random.default_rng(seed)
    t, h, w = shape
    out = np.zeros(shape, np.int64)
    for _ in range(max(1, int(density * h * w / 9))):
        f, y, x = rng.integers(0, t), rng.integers(0, h), rng.integers(0, w)
        out[f:f + 3, y:y + 3, x:x + 3] = rng.integers(-6, 7, out[f:f + 3, y:y + 3, x:x + 3].shape)
    return out


def _round_trip(q):
    blob = encode_symbols(q, signed=True)
    r = Reader(blob, "latents")
    got = decode_symbols(r, q.size, signed=True, shape=q.shape).reshape(q.shape)
    assert r.remaining == 0 and np.array_equal(got, q)
    return blob


@pytest.mark.parametrize("shape", [(8, 30, 40), (1, 33, 47), (5, 1, 700), (2, 25, 21), (3, 16, 16)])
def test_round_trips_exactly_whatever_the_shape(shape):
    _round_trip(_clustered(shape))


def _reference_groups(q):
    """The (pass, class) groups as the module's table describes them, position by position in Python."""
    t, h, w = q.shape
    known = np.zeros(q.shape, bool)
    groups = []
    for parity, anchor in ((0, 0), (0, 1), (1, 0), (1, 1)):
        spots = [(f, y, x) for f in range(t) for y in range(h) for x in range(w)
                 if f % 2 == parity and (y + x) % 2 == anchor]
        ctx = {}
        for f, y, x in spots:
            near = [(f, y, x - 1), (f, y, x + 1), (f, y - 1, x), (f, y + 1, x), (f - 1, y, x), (f + 1, y, x)]
            ctx[f, y, x] = sum(abs(int(q[p])) for p in near
                               if 0 <= p[0] < t and 0 <= p[1] < h and 0 <= p[2] < w and known[p])
        classes = {s: int(np.searchsorted(CLASS_FLOOR, ctx[s], side="right")) - 1 for s in spots}
        for k in range(len(CLASS_FLOOR)):
            members = [s for s in spots if classes[s] == k]
            if members:
                groups.append(np.array([q[s] for s in members]))
        for s in spots:
            known[s] = True
    return groups


@pytest.mark.parametrize("shape", [(5, 7, 9), (2, 1, 13), (1, 6, 6), (4, 11, 3)])
def test_the_passes_and_classes_are_the_documented_ones(shape):
    rng = np.random.default_rng(sum(shape))
    q = np.where(rng.random(shape) < 0.5, 0, rng.integers(-60, 61, shape))   # sums past the last class too
    got, want = _groups(q), _reference_groups(q)
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
def test_the_encoders_whole_array_groups_are_the_decoders_walk(density):
    """The encoder computes the groups from whole arrays, the decoder walks from the nonzero symbols it has
    decoded: the same arrays in the same order, on shapes with odd and even sides, one frame, one row."""
    rng = np.random.default_rng(int(density * 100))
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(1, 14, 3))
        q = np.where(rng.random(shape) < density, rng.integers(-300, 301, shape), 0).astype(np.int64)
        got, asked = _groups(q), []

        def read(count):        # the walk takes the encoder's groups one by one and puts each where it says
            asked.append(count)
            return got[len(asked) - 1]
        rebuilt = decode_context(q.shape, read)
        # every group the walk asked for has the encoder's size, and each value lands where q holds it: the
        # walk's group (q at the walk's positions) is the encoder's group, element by element
        assert asked == [g.size for g in got], shape
        assert np.array_equal(rebuilt, q), shape


def test_clustered_latents_choose_context_coding_and_it_pays():
    q = _clustered((12, 72, 88), seed=1)
    blob = _round_trip(q)
    assert blob[0] == CONTEXT
    flat = encode_symbols(q.reshape(-1), signed=True)       # the same symbols as one array: no context
    assert len(blob) < 0.85 * len(flat), (len(blob), len(flat))     # measured: 1341 vs 1784 bytes
    # the rate controller's estimate of it (on fitted latents: 2 % under the coder)
    assert context_entropy_bits(q) == pytest.approx(8 * len(blob), rel=0.1)


def test_unstructured_symbols_keep_a_single_model():
    rng = np.random.default_rng(3)
    q = rng.integers(-2, 3, (6, 20, 20))                    # no neighbourhood structure: classes only cost
    assert _round_trip(q)[0] != CONTEXT


def test_context_needs_the_shape_and_a_signed_array():
    q = _clustered((12, 36, 44), seed=1)
    blob = encode_symbols(q, signed=True)
    with pytest.raises(FormatError, match="method 6"):
        decode_symbols(Reader(blob, "latents"), q.size, signed=True)     # no shape: not a latent map
    assert encode_symbols(np.abs(q), signed=False)[0] != CONTEXT        # format 1 (unsigned) never uses it


def test_damaged_context_data_raises_a_format_error():
    q = _clustered((12, 36, 44), seed=1)
    blob = bytearray(encode_symbols(q, signed=True))
    for cut in (len(blob) // 3, len(blob) - 3):
        with pytest.raises(FormatError):
            decode_symbols(Reader(bytes(blob[:cut]), "latents"), q.size, signed=True, shape=q.shape)


def test_golden_bytes_of_a_context_coded_map():
    """Pins method 6's layout (passes, classes, their order): files written with it depend on it."""
    i = np.arange(4 * 24 * 32, dtype=np.int64)
    v = (i * 2654435761) % 1009                                        # integer arithmetic only
    q = np.where(v < 12, (v % 5) - 2, 0).reshape(4, 24, 32)                 # a few scattered values
    q[:, 8:16, 10:20] = ((i.reshape(4, 24, 32)[:, 8:16, 10:20] * 40503) % 9) - 4   # a busy region
    blob = _round_trip(q)
    assert blob[0] == CONTEXT and len(blob) == GOLDEN_LEN
    assert hashlib.sha256(blob).hexdigest() == GOLDEN_SHA256


GOLDEN_LEN = 279
GOLDEN_SHA256 = "08541968f86843b7c33f30467b0ee072dfca958af00887bf9ddedede410fff2e"


def test_a_file_coded_without_context_recodes_smaller_and_decodes_the_same(tmp_path, monkeypatch):
    """benchmarks/recode.py on a latent-grid file written without method 6: fewer bytes, same video."""
    from nervcodec.codec import EncodeConfig, decode, encode
    from nervcodec.entropy import coder
    from nervcodec.io import write_video

    from conftest import load_benchmark, make_moving_clip

    info, frames = make_moving_clip(width=48, height=32, frames=8)
    src = tmp_path / "m.y4m"
    write_video(src, info, frames)
    out = tmp_path / "m.nerv"
    with monkeypatch.context() as m:
        m.setattr(coder, "MIN_CONTEXT_SIZE", 1 << 40)        # the coder before method 6
        encode([src], out, EncodeConfig(model="latent-grid", bpp=6.0, steps=60, device="cpu", gop=4))
    r = load_benchmark("recode").recode(out, write=True)
    assert r["recoded_bytes"] < r["bytes"] and r["recoded_bytes_by_method"].get("context", 0) > 0, r
    decode(out, tmp_path / "a.y4m", device="cpu")
    decode(tmp_path / "m.recoded.nerv", tmp_path / "b.y4m", device="cpu")
    assert (tmp_path / "a.y4m").read_bytes() == (tmp_path / "b.y4m").read_bytes()
