"""Reading and writing the .nerv container.

Byte layout (all integers little endian; ``varint`` is unsigned LEB128):

    magic          8 bytes   89 4E 45 52 56 0D 0A 1A   ("\\x89NERV\\r\\n\\x1a": catches text-mode damage)
    version        2 bytes   major, minor
    header_len     u32
    header         header_len bytes (below)
    header_crc     u32       CRC-32 of the header bytes
    section_count  u8
    sections       section_count x { type u8, length u32, crc u32 (CRC-32 of payload), payload }

Header: ``video_count u8``, then per video ``name (varint length + UTF-8), width,
height (varint), pix_fmt u8, fps_num, fps_den, frames (varint)``; then
``arch_id u8``, ``quant_bits u8`` (format 2: 0 = steps learned by the rate-aware fit,
2..16 = ``--quant-bits``; format 1: the affine quantizer's bit depth) and ``model (varint length + JSON)``: the
model's configuration and the layout of clips and patches, compact JSON with
sorted keys.

Readers check every length and count against fixed bounds and the bytes left
before allocating anything, so damage gives :class:`FormatError`.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

from ..bytesio import Reader, Writer
from ..errors import FormatError
from ..fsutil import atomic_write_bytes
from ..io.video import PIXEL_FORMATS, VideoInfo

__all__ = ["MAGIC", "VERSION", "READABLE_MAJORS", "SECTION_WEIGHTS", "SECTION_KEYFRAMES", "SECTION_NAMES", "PIXEL_FORMAT_CODES",
           "Header", "NervFile", "pack", "unpack", "read_file", "write_file"]

MAGIC = b"\x89NERV\r\n\x1a"
VERSION = (2, 0)
# Format 1 (nervcodec before the rate-aware fit: affine 8-bit weights) is still read.
READABLE_MAJORS = (1, 2)
SECTION_WEIGHTS = 1
SECTION_KEYFRAMES = 2
SECTION_NAMES = {SECTION_WEIGHTS: "weights", SECTION_KEYFRAMES: "keyframes"}

# Stable codes: never renumber, only append.
PIXEL_FORMAT_CODES: Dict[str, int] = {
    "yuv420p": 0, "yuv422p": 1, "yuv444p": 2, "yuv420p10le": 3, "yuv422p10le": 4, "yuv444p10le": 5,
    "yuv420p12le": 6, "yuv444p12le": 7, "gray": 8, "gray10le": 9,
}
_CODE_TO_FMT = {v: k for k, v in PIXEL_FORMAT_CODES.items()}

MAX_HEADER = 1 << 20
MAX_SECTIONS = 16
MAX_VIDEOS = 65535     # a count byte of 0 is followed by a varint count (256 or more videos)
MAX_DIM = 16384
MAX_FRAMES = 10_000_000
MAX_NAME = 255
MAX_FPS_TERM = 1 << 31


@dataclass(frozen=True)
class Header:
    videos: Tuple[VideoInfo, ...]
    arch_id: int
    quant_bits: int
    model: Dict[str, Any] = field(hash=False)  # {"config": {...}, "layout": {...}}

    @property
    def total_pixels(self) -> int:
        return sum(v.pixels for v in self.videos)

    @property
    def total_frames(self) -> int:
        return sum(v.num_frames for v in self.videos)


@dataclass(frozen=True)
class NervFile:
    header: Header
    sections: Dict[int, bytes] = field(hash=False)
    version: Tuple[int, int] = VERSION
    size: int = 0                      # bytes of the whole file
    header_bytes: int = 0              # magic + version + header + crc + section table overhead

    def section(self, kind: int) -> bytes:
        try:
            return self.sections[kind]
        except KeyError:
            raise FormatError(f"the file has no {SECTION_NAMES.get(kind, kind)} section") from None


def _pack_header(h: Header) -> bytes:
    w = Writer()
    if not 1 <= len(h.videos) <= MAX_VIDEOS:
        raise ValueError(f"1..{MAX_VIDEOS} videos per file")
    if len(h.videos) <= 255:
        w.u8(len(h.videos))
    else:   # large collections: 0, then the count (readers before this rule refuse the file cleanly)
        w.u8(0).varint(len(h.videos))
    for v in h.videos:
        name = v.name.encode("utf-8")[:MAX_NAME]
        w.blob(name).varint(v.width).varint(v.height).u8(PIXEL_FORMAT_CODES[v.pix_fmt.name])
        w.varint(v.fps.numerator).varint(v.fps.denominator).varint(v.num_frames)
    w.u8(h.arch_id).u8(h.quant_bits)
    w.blob(json.dumps(h.model, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return w.getvalue()


def _unpack_header(data: bytes, major: int = VERSION[0]) -> Header:
    r = Reader(data, "file header")
    n = r.u8()
    if n == 0:
        n = r.varint(MAX_VIDEOS)
        if n <= 255:
            raise FormatError("file header has a long video count for fewer than 256 videos")
    videos = []
    for _ in range(n):
        try:
            name = r.blob(MAX_NAME).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("file header has a video name that is not UTF-8") from None
        width, height = r.varint(MAX_DIM), r.varint(MAX_DIM)
        code = r.u8()
        if code not in _CODE_TO_FMT:
            raise FormatError(f"file header has unknown pixel format code {code}")
        num, den = r.varint(MAX_FPS_TERM), r.varint(MAX_FPS_TERM)
        frames = r.varint(MAX_FRAMES)
        if width < 1 or height < 1 or frames < 1 or num < 1 or den < 1:
            raise FormatError("file header has a zero size, frame count or frame rate")
        videos.append(VideoInfo(width, height, PIXEL_FORMATS[_CODE_TO_FMT[code]], Fraction(num, den), frames,
                                name=name))
    arch_id, bits = r.u8(), r.u8()
    if not (2 <= bits <= 16 or (bits == 0 and major >= 2)):
        raise FormatError(f"file header has quantization depth {bits}")
    try:
        model = json.loads(r.blob(MAX_HEADER).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FormatError("file header's model description is not valid JSON") from None
    if not isinstance(model, dict):
        raise FormatError("file header's model description is not an object")
    for key, kind in (("config", dict), ("layout", dict), ("encoder", str)):
        if not isinstance(model.get(key, kind()), kind):
            raise FormatError(f"file header's model description has an invalid {key!r}")
    r.expect_end()
    return Header(tuple(videos), arch_id, bits, model)


def pack(header: Header, sections: Mapping[int, bytes]) -> bytes:
    """The complete file as bytes."""
    hb = _pack_header(header)
    w = Writer().raw(MAGIC).u8(VERSION[0]).u8(VERSION[1]).u32(len(hb)).raw(hb).u32(zlib.crc32(hb))
    w.u8(len(sections))
    for kind in sorted(sections):
        payload = sections[kind]
        w.u8(kind).u32(len(payload)).u32(zlib.crc32(payload)).raw(payload)
    return w.getvalue()


def unpack(data: bytes) -> NervFile:
    """Parse and verify a whole file held in memory."""
    r = Reader(data, ".nerv file")
    if len(data) < len(MAGIC) or r.raw(len(MAGIC)) != MAGIC:
        raise FormatError("not a .nerv file (bad magic bytes)")
    major, minor = r.u8(), r.u8()
    if major not in READABLE_MAJORS:
        raise FormatError(f"file format version {major}.{minor} is not supported by this nervcodec "
                          f"(it reads {', '.join(f'{m}.x' for m in READABLE_MAJORS)})"
                          f"{'; upgrade nervcodec' if major > VERSION[0] else ''}")
    hlen = r.u32()
    if hlen > MAX_HEADER:
        raise FormatError(f"file header claims {hlen} bytes (at most {MAX_HEADER})")
    hb = r.raw(hlen)
    if zlib.crc32(hb) != r.u32():
        raise FormatError("file header is damaged (checksum mismatch)")
    header = _unpack_header(hb, major)
    count = r.u8()
    if count > MAX_SECTIONS:
        raise FormatError(f"file claims {count} sections (at most {MAX_SECTIONS})")
    sections: Dict[int, bytes] = {}
    overhead = r.pos
    for _ in range(count):
        kind, length, crc = r.u8(), r.u32(), r.u32()
        overhead += 9
        if kind in sections:
            raise FormatError(f"file has two sections of type {kind}")
        payload = r.raw(length)
        if zlib.crc32(payload) != crc:
            raise FormatError(f"the {SECTION_NAMES.get(kind, f'type-{kind}')} section is damaged (checksum mismatch)")
        sections[kind] = payload
    r.expect_end()
    return NervFile(header, sections, (major, minor), len(data), overhead)


def read_file(path: str | os.PathLike) -> NervFile:
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise FormatError(f"{p} is not a file")
        with open(p, "rb") as f:
            head = f.read(len(MAGIC))
            if head != MAGIC:
                raise FormatError(f"{p} is not a .nerv file (bad magic bytes)")
            data = head + f.read(size)
    except FileNotFoundError:
        raise FormatError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{p} is a directory, not a .nerv file") from None
    except PermissionError:
        raise FormatError(f"{p}: permission denied") from None
    try:
        return unpack(data)
    except FormatError as exc:   # say which file: a user may be reading many
        raise FormatError(f"{p}: {exc}") from None


def write_file(path: str | os.PathLike, header: Header, sections: Mapping[int, bytes]) -> int:
    """Write the file atomically (see :mod:`nervcodec.fsutil`); return its size in bytes."""
    data = pack(header, sections)
    atomic_write_bytes(path, data)
    return len(data)
