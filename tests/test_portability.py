"""The weights section decodes the same on every machine: its entropy models come from integers only.

Golden blobs pin the coder's output for each method (raw, categorical, sparse,
constant, laplace).  Decoding the *stored* blobs must give the stored symbols, and
encoding the symbols must give the stored bytes: a change of constriction's range
coder, of the Laplace table or of the model construction fails here before it can
make files written on one machine undecodable on another.  The probability models
handed to the range coder during decoding are checked to hold integer counts only
(no float computed from the data crosses the wire).

Also: decoding a file twice gives identical frames, and encoding twice with the
same seed gives the same bytes (D-NeRV as well as NeRV).
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from nervcodec.bytesio import Reader
from nervcodec.entropy import decode_symbols, encode_symbols
from nervcodec.entropy.coder import METHODS, _laplace_counts

coder = importlib.import_module("nervcodec.entropy.coder")


def _geometric(n: int, centre: int, seed: int) -> np.ndarray:
    """A two-sided geometric sample made with integer arithmetic only (no RNG whose stream could change)."""
    out = []
    for i in range(n):
        x = ((i + seed) * 2654435761) % (1 << 32) | (1 << 20)
        d = (x & -x).bit_length() - 1
        out.append(centre + (d if (x >> 21) & 1 else -d))
    return np.array(out)


_PATTERN = [0] * 16 + [1, 2, 3, 7]
GOLDEN = {
    "constant": (np.full(12, 7), "0307"),
    "raw": (np.array([0, 3, 1, 2]), "00000236"),
    "categorical": (np.array([_PATTERN[(i * 7) % 20] for i in range(100)]),
                    "010007500505050000000504009a91238e03208b3270163d07a42859"),
    "sparse": (np.array([0] * 40 + [70000] * 6 + [3000] * 3), "0200f0a204030028b71703b78b040602f2881000fc7030ba"),
    "laplace": (_geometric(150, 40, 1),
                "04220d06c2d5010c9027819b2bc525bcbb16e1749b80a1f901becd830d3c740005d73fcecf50def77b0d5a2a8f707c7"
                "18e482b39bf3ddd9e"),
}


@pytest.mark.parametrize("method", sorted(GOLDEN))
def test_golden_blob_decodes_to_golden_symbols(method):
    symbols, blob_hex = GOLDEN[method]
    blob = bytes.fromhex(blob_hex)
    assert METHODS[blob[0]] == method
    r = Reader(blob, "golden")
    out = decode_symbols(r, symbols.size)
    assert r.remaining == 0
    np.testing.assert_array_equal(out, symbols)


@pytest.mark.parametrize("method", sorted(GOLDEN))
def test_encoder_writes_the_golden_bytes(method):
    symbols, blob_hex = GOLDEN[method]
    assert encode_symbols(symbols).hex() == blob_hex


def test_laplace_table_is_exact_integers():
    table = _laplace_counts(6, 2, 40000)
    assert table.dtype == np.int64
    assert table.tolist() == [6250000, 10240000, 16777216, 10240000, 6250000, 3814697, 2328306]


def test_decoder_models_hold_integer_counts_only(monkeypatch):
    seen = []
    real = coder._model

    def spy(counts):
        seen.append(np.asarray(counts))
        return real(counts)

    monkeypatch.setattr(coder, "_model", spy)
    for method in ("categorical", "sparse", "laplace"):
        symbols, blob_hex = GOLDEN[method]
        decode_symbols(Reader(bytes.fromhex(blob_hex), "golden"), symbols.size)
    assert len(seen) == 3
    for counts in seen:
        assert counts.dtype.kind in "iu", counts.dtype      # integers, converted to float64 exactly inside
        assert counts.max() < 2 ** 53


# --------------------------------------------------------------------------- determinism of whole files


def _encode(tmp_path, src, name, **kw):
    from nervcodec.codec import EncodeConfig, encode
    out = tmp_path / name
    encode([src], out, EncodeConfig(device="cpu", seed=1, epochs=1, **kw))
    return out


def test_nerv_encode_and_decode_are_deterministic(tmp_path, clip_file):
    from nervcodec.codec import decode
    src = clip_file(width=12, height=8, frames=3)[0]
    a = _encode(tmp_path, src, "a.nerv", model="nerv", params=2000)
    b = _encode(tmp_path, src, "b.nerv", model="nerv", params=2000)
    assert a.read_bytes() == b.read_bytes()
    decode(a, tmp_path / "a.y4m", device="cpu")
    decode(a, tmp_path / "b.y4m", device="cpu", batch=1)   # another batching gives the same frames too
    assert (tmp_path / "a.y4m").read_bytes() == (tmp_path / "b.y4m").read_bytes()


def test_dnerv_encode_and_decode_are_deterministic(tmp_path, clip_file):
    from nervcodec.codec import decode
    src = clip_file(width=16, height=16, frames=3)[0]
    a = _encode(tmp_path, src, "a.nerv", model="dnerv", params=6000, clip_len=2)
    b = _encode(tmp_path, src, "b.nerv", model="dnerv", params=6000, clip_len=2)
    assert a.read_bytes() == b.read_bytes()
    decode(a, tmp_path / "a.y4m", device="cpu")
    decode(a, tmp_path / "b.y4m", device="cpu")
    assert (tmp_path / "a.y4m").read_bytes() == (tmp_path / "b.y4m").read_bytes()
