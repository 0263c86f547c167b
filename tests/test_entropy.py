import numpy as np
import pytest

from nervcodec.bytesio import Reader, Writer
from nervcodec.entropy import METHODS, decode_symbols, encode_symbols
from nervcodec.errors import FormatError


def _roundtrip(q):
    blob = encode_symbols(q)
    r = Reader(blob)
    out = decode_symbols(r, q.size)
    r.expect_end()
    return blob, out


@pytest.mark.parametrize("n", [0, 1, 2, 5, 17, 300, 5000, 60000])
@pytest.mark.parametrize("dist", ["laplace", "uniform", "peaked", "constant"])
def test_roundtrip_exact(n, dist):
    rng = np.random.default_rng(n)
    if dist == "laplace":
        q = np.clip(np.rint(rng.laplace(128, 9, n)), 0, 255)
    elif dist == "uniform":
        q = rng.integers(0, 256, n)
    elif dist == "peaked":
        q = np.where(rng.random(n) < 0.9, 40, rng.integers(0, 255, n))
    else:
        q = np.full(n, 77)
    q = q.astype(np.int32)
    blob, out = _roundtrip(q)
    assert np.array_equal(out, q)


def test_every_method_is_used_and_roundtrips():
    rng = np.random.default_rng(1)
    cases = {
        "constant": np.full(100, 3),
        "raw": rng.integers(0, 256, 20),
        "laplace": np.clip(np.rint(rng.laplace(100, 6, 3000)), 0, 255),
        "categorical": np.concatenate([rng.integers(0, 256, 50000), np.full(50000, 10)]),
        "sparse": np.repeat([0, 5000, 100000], [3000, 2000, 1000]),
    }
    for name, q in cases.items():
        q = q.astype(np.int64)
        blob, out = _roundtrip(q)
        assert METHODS[blob[0]] == name, (name, METHODS[blob[0]])
        assert np.array_equal(out, q)


def test_rate_close_to_entropy():
    rng = np.random.default_rng(2)
    q = np.clip(np.rint(rng.laplace(128, 10, 200000)), 0, 255).astype(np.int32)
    p = np.bincount(q) / q.size
    p = p[p > 0]
    entropy_bits = -(p * np.log2(p)).sum() * q.size
    blob = encode_symbols(q)
    assert entropy_bits <= len(blob) * 8 <= entropy_bits * 1.01 + 2000


def test_golden_bytes():
    # the format is fixed: these bytes must never change
    assert encode_symbols(np.array([5, 5, 5])) == bytes([3, 5])
    assert encode_symbols(np.array([1, 2, 3])) == bytes([0, 1, 2, 0b00011000])


def test_damaged_stream_raises_format_error():
    q = np.clip(np.rint(np.random.default_rng(3).laplace(128, 9, 5000)), 0, 255).astype(np.int32)
    blob = encode_symbols(q)
    for cut in (1, 3, len(blob) // 2, len(blob) - 1):
        with pytest.raises(FormatError):
            decode_symbols(Reader(blob[:cut]), q.size)
    with pytest.raises(FormatError):
        decode_symbols(Reader(bytes([9]) + blob[1:]), q.size)


def test_varint_roundtrip():
    w = Writer()
    vals = [0, 1, 127, 128, 300, 2 ** 32, 2 ** 40 - 1]
    for v in vals:
        w.varint(v)
    r = Reader(w.getvalue())
    assert [r.varint() for _ in vals] == vals
    with pytest.raises(FormatError):
        Reader(bytes([0xFF] * 12)).varint()
