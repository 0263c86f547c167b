import zlib
from fractions import Fraction

import pytest

from nervcodec.fsutil import atomic_write_bytes
from nervcodec.container import (MAGIC, SECTION_KEYFRAMES, SECTION_WEIGHTS, Header, pack,
                                 read_file, unpack, write_file)
from nervcodec.errors import FormatError
from nervcodec.io.video import VideoInfo, pixel_format


def _header(quant_bits: int = 8):
    v = VideoInfo(176, 144, pixel_format("yuv420p"), Fraction(30000, 1001), 48, name="people")
    return Header(videos=(v,), arch_id=1, quant_bits=quant_bits, model={"config": {"a": 1}, "layout": {"clip_len": 1}})


# Golden bytes of a fixed header: the file format is frozen at version 2.0 (1.0 differed only in its
# version bytes and its weights section).
GOLDEN = bytes.fromhex(
    "894e4552560d0a1a0200"      # magic, version 2.0
    "40000000"                  # header length 64
    "01" "06" + "people".encode().hex() +   # one video, name
    "b001" "9001" "00" "b0ea01" "e907" "30"  # 176, 144, yuv420p, 30000, 1001, 48 frames
    "01" "08"                   # arch 1, 8 bits
    "2a" + '{"config":{"a":1},"layout":{"clip_len":1}}'.encode().hex()
)


def test_golden_header_bytes():
    data = pack(_header(), {})
    body = data[:len(GOLDEN)]
    assert body == GOLDEN
    hlen = int.from_bytes(data[10:14], "little")
    assert data[14 + hlen:18 + hlen] == zlib.crc32(data[14:14 + hlen]).to_bytes(4, "little")
    assert data[18 + hlen] == 0  # no sections


def test_roundtrip(tmp_path):
    sections = {SECTION_WEIGHTS: b"\x01\x02\x03" * 100, SECTION_KEYFRAMES: b"kf"}
    p = tmp_path / "x.nerv"
    size = write_file(p, _header(), sections)
    assert p.stat().st_size == size
    nf = read_file(p)
    assert nf.header == _header()
    assert nf.header.model == _header().model
    assert nf.sections == sections
    assert nf.size == size


def test_newer_version_is_refused():
    data = bytearray(pack(_header(), {}))
    data[8] = 3
    with pytest.raises(FormatError, match="version 3.0"):
        unpack(bytes(data))


@pytest.mark.parametrize("where", ["magic", "header", "section", "truncate", "trailing"])
def test_damage_is_detected(where):
    data = bytearray(pack(_header(), {SECTION_WEIGHTS: bytes(range(200))}))
    if where == "magic":
        data[0] ^= 1
    elif where == "header":
        data[20] ^= 0x10
    elif where == "section":
        data[-5] ^= 0x01
    elif where == "truncate":
        data = data[:-7]
    else:
        data += b"x"
    with pytest.raises(FormatError):
        unpack(bytes(data))


def test_atomic_write_keeps_existing_file_on_failure(tmp_path):
    p = tmp_path / "keep.nerv"
    p.write_bytes(b"old")

    class Boom(bytes):
        pass

    with pytest.raises(TypeError):
        atomic_write_bytes(p, object())  # type: ignore[arg-type]
    assert p.read_bytes() == b"old"
    assert [f.name for f in tmp_path.iterdir()] == ["keep.nerv"]


def test_magic_constant():
    assert MAGIC == b"\x89NERV\r\n\x1a"


def test_learned_step_quantization_byte_is_format_2_only():
    data = pack(_header(quant_bits=0), {})
    assert unpack(data).header.quant_bits == 0
    old = bytearray(data)
    old[8] = 1                                   # the same header claiming format 1: bits 0 is invalid there
    with pytest.raises(FormatError, match="quantization depth 0"):
        unpack(bytes(old))
