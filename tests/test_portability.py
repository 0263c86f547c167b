"""The weights section decodes the same on every machine: its entropy models come from integers only.

Golden blobs pin the coder's output for each method (raw, categorical, sparse,
constant, laplace; and the signed form of format 2, with gauss).  Decoding the *stored* blobs must give the stored symbols, and
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
from pathlib import Path

import numpy as np
import pytest

from nervcodec.bytesio import Reader
from nervcodec.entropy import decode_symbols, encode_symbols
from nervcodec.entropy.coder import METHODS, _gauss_tables, _laplace_counts

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


_GAUSS_COUNTS = [3, 6, 15, 33, 60, 90, 111, 120, 111, 90, 60, 33, 15, 6, 3]   # a discretised Gaussian, sigma ~2.5
_GAUSS_VALUES = np.repeat(np.arange(-7, 8), _GAUSS_COUNTS)
# format 2: zero-centred signed symbols (lo as a zigzag varint)
GOLDEN_SIGNED = {
    "constant": (np.full(9, -5), "0309"),
    "raw": (np.array([-3, 2, 0, -1]), "00050315a0"),
    "laplace": (_geometric(150, 0, 1),
                "040b0d06c2d5010c9027819b2bc525bcbb16e1749b80a1f901becd830d3c740005d73fcecf50def77b0d5a2a8f707c7"
                "18e482b39bf3ddd9e"),
    "gauss": (_GAUSS_VALUES[[(i * 97) % 756 for i in range(756)]], (
    "050d0e07f5fdb2074f51a11500bdb30f2a8304fc749ebb21305bc57c52f08c68dba50300c6a92e632f553499ae855c0fc224"
    "478ff7035999bd590265fbe645a4576baa126ea30a79ff27c7ffdcd246a7fe2b4c0cde9dbad2b39a671d94e68402af1f2eba"
    "83c81221b736449dfcf59ae53b9294a52447f06b70c5f0730aed536150785bcf9632b5630b95987cbc4cfb6d0253bd31a4e7"
    "2381d79cf5abbe5c06f6c833663d9514ff6d5556766709816f27ee7f363803ec931f39fa67102fa4d55ce3e8fbb46eb3c1c1"
    "1eef44f0cc813f1f6a713f9e8b1458f5208bb2e1997e1022a7625d5e885f67f4537bc3ab366ee6139718f66c012401bc0edc"
    "90371892bc9173d8124ab6afcd0ad945a8809cf209dfc594f74ed51a94314277f9f224a106184a4594beacdd24bfcba4b032"
    "4a3c8c3cf17f08bf5f68460e0e4b57a8836a5a4c634a34382a"
    )),
}
CASES = [(m, False) for m in sorted(GOLDEN)] + [(m, True) for m in sorted(GOLDEN_SIGNED)]


@pytest.mark.parametrize("method,signed", CASES)
def test_golden_blob_decodes_to_golden_symbols(method, signed):
    symbols, blob_hex = (GOLDEN_SIGNED if signed else GOLDEN)[method]
    blob = bytes.fromhex(blob_hex)
    assert METHODS[blob[0]] == method
    r = Reader(blob, "golden")
    out = decode_symbols(r, symbols.size, signed=signed)
    assert r.remaining == 0
    np.testing.assert_array_equal(out, symbols)


@pytest.mark.parametrize("method,signed", CASES)
def test_encoder_writes_the_golden_bytes(method, signed):
    symbols, blob_hex = (GOLDEN_SIGNED if signed else GOLDEN)[method]
    assert encode_symbols(symbols, signed=signed).hex() == blob_hex


def test_gauss_is_format_2_only():
    from nervcodec.errors import FormatError
    symbols, blob_hex = GOLDEN_SIGNED["gauss"]
    with pytest.raises(FormatError, match="unknown entropy-coding method 5"):
        decode_symbols(Reader(bytes.fromhex(blob_hex), "golden"), symbols.size)


def test_gauss_table_is_exact_integers():
    table = _gauss_tables(6, 2, [12000000])[0]
    assert table.dtype == np.int64
    assert table.tolist() == [4391017, 12000000, 16777216, 12000000, 4391017, 821999, 78722]


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
    symbols, blob_hex = GOLDEN_SIGNED["gauss"]
    decode_symbols(Reader(bytes.fromhex(blob_hex), "golden"), symbols.size, signed=True)
    assert len(seen) == 4
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


# --------------------------------------------------------------------------- files of format 1

DATA = Path(__file__).parent / "data"
# Written by nervcodec 0.x at format 1.0 (commit 40c8801): NeRV, 12x8, 3 frames, --params 2000 --epochs 3
# --seed 1, and D-NeRV, 16x16, 3 frames, --params 6000 --clip-len 2, of conftest.make_clip(seed 0).
# The hashes are of the dequantized float32 weights (affine 8-bit, lo + step * q): pure integer and
# IEEE float32 arithmetic, the same on every machine.
V1_FILES = {
    "v1_nerv.nerv": ("d07ba6498a329d6ac79cf9cb44027cdcef12d26865c4a7b49f335866b27d07a5", (12, 8)),
    "v1_dnerv.nerv": ("d40a2ca41422f580dd04aaf67f7e971e4e6dc92e5bcd634479a1b42e08c3389a", (16, 16)),
}


@pytest.mark.parametrize("name", sorted(V1_FILES))
def test_format_1_files_still_decode(tmp_path, name):
    import hashlib

    from nervcodec.codec import decode, inspect
    from nervcodec.codec.decode import load_model
    from nervcodec.container import read_file
    from nervcodec.io import read_video
    digest, (w, h) = V1_FILES[name]
    nf = read_file(DATA / name)
    assert nf.version == (1, 0) and nf.header.quant_bits == 8
    model, _ = load_model(nf)
    sha = hashlib.sha256()
    for t in model.state_dict().values():
        if t.is_floating_point():
            sha.update(t.float().numpy().tobytes())
    assert sha.hexdigest() == digest
    decode(DATA / name, tmp_path / "out.y4m", device="cpu")
    info, frames = read_video(tmp_path / "out.y4m")
    assert (info.width, info.height, frames.num_frames) == (w, h, 3)
    fi = inspect(DATA / name)
    assert fi.version == "1.0" and fi.params == sum(t.numel() for t in model.parameters())
    assert sum(t["bytes"] for t in fi.tensors) + 1 == fi.weights_bytes


def test_format_1_dnerv_file_decodes_to_its_quality(tmp_path):
    """The D-NeRV file of format 1 decodes to what it was encoded at (44.45 dB PSNR-YUV)."""
    from conftest import make_clip
    from nervcodec.codec import decode
    from nervcodec.codec.quality import FrameScores
    from nervcodec.io import read_video
    decode(DATA / "v1_dnerv.nerv", tmp_path / "out.y4m", device="cpu")
    _, out = read_video(tmp_path / "out.y4m")
    info, src = make_clip(width=16, height=16, frames=3)
    scores = FrameScores(info.pix_fmt)
    for f in range(3):
        scores.add([p[f] for p in src.planes], [p[f] for p in out.planes])
    assert scores.psnr_yuv == pytest.approx(44.45, abs=0.05)   # the same frames as nervcodec at format 1


def test_unknown_future_major_version_is_refused():
    from nervcodec.container import MAGIC, unpack
    from nervcodec.errors import FormatError
    with pytest.raises(FormatError, match="upgrade nervcodec"):
        unpack(MAGIC + bytes([3, 0]) + bytes(20))
