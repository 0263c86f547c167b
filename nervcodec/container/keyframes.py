"""The keyframes section: D-NeRV's decoded keyframes, one independently decodable blob each.

Payload layout (integers LEB128): ``codec_id u8``, ``params`` (varint length +
compact JSON with sorted keys: what the keyframe decoder needs, e.g. a learned
model's name and weight hash), ``quality`` (varint), then the blobs as
:func:`pack_blobs` stores them: ``count``, the blobs' common prefix once, then
each blob's length and suffix.  Blob k is the k-th keyframe in (video, frame)
order.  Because every blob stands alone, decoding one clip needs only its two
keyframes.

Why the common prefix: every self-contained intra bitstream repeats the same
headers (HEVC VPS/SPS/PPS, the AV1 sequence header, the JPEG XL image header);
for a QCIF keyframe of about 1-3 kB these are 3-10% of its size, and they are
paid once per file this way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Sequence

from ..bytesio import Reader, Writer
from ..errors import FormatError

__all__ = ["KeyframeSection", "pack_keyframe_section", "parse_keyframe_section", "pack_blobs", "unpack_blobs",
           "packed_size", "MAX_KEYFRAMES"]

MAX_KEYFRAMES = 1 << 22


@dataclass(frozen=True)
class KeyframeSection:
    codec_id: int
    params: Dict
    quality: int
    blobs: List[bytes]


def _common_prefix(blobs: Sequence[bytes]) -> int:
    if len(blobs) < 2:
        return 0
    first = blobs[0]
    n = min(len(b) for b in blobs)
    for i in range(n):
        c = first[i]
        if any(b[i] != c for b in blobs[1:]):
            return i
    return n


def pack_blobs(blobs: Sequence[bytes]) -> bytes:
    """Serialise keyframe blobs compactly: ``count, prefix_len, prefix, (len_i, suffix_i)*``.

    All integers are LEB128 varints.  The longest common prefix of the blobs
    (repeated codec headers) is stored once; blob ``i`` is ``prefix + suffix_i``.
    Random access is kept: any blob is rebuilt from the prefix and its own
    suffix, and the suffix offsets follow from the length fields alone.
    """
    blobs = [bytes(b) for b in blobs]
    k = _common_prefix(blobs)
    w = Writer().varint(len(blobs)).blob(blobs[0][:k] if blobs else b"")
    for b in blobs:
        w.blob(b[k:])
    return w.getvalue()


def unpack_blobs(data: bytes) -> List[bytes]:
    """Inverse of :func:`pack_blobs`; raises :class:`FormatError` on damaged or truncated data."""
    r = Reader(bytes(data), "keyframe data")
    count = r.varint(r.remaining)       # every blob costs at least its length byte
    prefix = r.blob()
    if count == 0 and prefix:
        raise FormatError("keyframe data is damaged (a shared header for an empty list)")
    blobs = [prefix + r.blob() for _ in range(count)]
    r.expect_end()
    return blobs


def packed_size(blobs: Sequence[bytes]) -> int:
    """Bytes :func:`pack_blobs` would write: what the keyframes really cost in the file."""
    return len(pack_blobs(blobs))


def pack_keyframe_section(codec_id: int, params: Dict, quality: int, blobs: Sequence[bytes]) -> bytes:
    w = Writer().u8(codec_id).blob(json.dumps(params, sort_keys=True, separators=(",", ":")).encode())
    return w.varint(quality).raw(pack_blobs(blobs)).getvalue()


def parse_keyframe_section(data: bytes) -> KeyframeSection:
    r = Reader(data, "keyframes section")
    codec_id = r.u8()
    try:
        params = json.loads(r.blob(1 << 16).decode())
    except (UnicodeDecodeError, ValueError):
        raise FormatError("keyframes section: parameters are not valid JSON") from None
    if not isinstance(params, dict):
        raise FormatError("keyframes section: parameters are not an object")
    quality = r.varint(1 << 16)
    blobs = unpack_blobs(r.raw(r.remaining))
    if len(blobs) > MAX_KEYFRAMES:
        raise FormatError("keyframes section: too many keyframes")
    return KeyframeSection(codec_id, params, quality, blobs)
