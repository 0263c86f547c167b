"""Video data types shared by every stage: pixel formats, stream info and frame batches.

Frames are kept in their native planar form (Y, U, V planes of code values, uint8
for 8-bit and uint16 for deeper formats).  The codec models those planes
directly, so an 8-bit 4:2:0 source comes back as 8-bit 4:2:0 with no colour
conversion in between.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Dict, Tuple

import numpy as np

from ..errors import InputError

__all__ = ["PixelFormat", "PIXEL_FORMATS", "pixel_format", "VideoInfo", "Frames"]


@dataclass(frozen=True)
class PixelFormat:
    """A planar YUV or gray pixel format, named as ffmpeg names it."""

    name: str
    bit_depth: int
    log2_chroma_w: int  # 1 for 4:2:0 and 4:2:2, 0 for 4:4:4
    log2_chroma_h: int  # 1 for 4:2:0, 0 otherwise
    has_chroma: bool = True

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.bit_depth <= 8 else np.dtype("<u2")

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def num_planes(self) -> int:
        return 3 if self.has_chroma else 1

    def chroma_size(self, width: int, height: int) -> Tuple[int, int]:
        """(width, height) of a chroma plane, rounding up as ffmpeg does."""
        cw = -(-width >> self.log2_chroma_w) if self.log2_chroma_w else width
        ch = -(-height >> self.log2_chroma_h) if self.log2_chroma_h else height
        return cw, ch

    def plane_shapes(self, width: int, height: int) -> Tuple[Tuple[int, int], ...]:
        """(height, width) of each plane."""
        if not self.has_chroma:
            return ((height, width),)
        cw, ch = self.chroma_size(width, height)
        return ((height, width), (ch, cw), (ch, cw))

    def frame_bytes(self, width: int, height: int) -> int:
        return sum(h * w for h, w in self.plane_shapes(width, height)) * self.dtype.itemsize


def _fmt(name: str, depth: int, cw: int, ch: int, chroma: bool = True) -> PixelFormat:
    return PixelFormat(name, depth, cw, ch, chroma)


PIXEL_FORMATS: Dict[str, PixelFormat] = {
    p.name: p
    for p in (
        _fmt("yuv420p", 8, 1, 1), _fmt("yuv422p", 8, 1, 0), _fmt("yuv444p", 8, 0, 0),
        _fmt("yuv420p10le", 10, 1, 1), _fmt("yuv422p10le", 10, 1, 0), _fmt("yuv444p10le", 10, 0, 0),
        _fmt("yuv420p12le", 12, 1, 1), _fmt("yuv444p12le", 12, 0, 0),
        _fmt("gray", 8, 0, 0, False), _fmt("gray10le", 10, 0, 0, False),
    )
}


def pixel_format(name: str) -> PixelFormat:
    try:
        return PIXEL_FORMATS[name]
    except KeyError:
        raise InputError(f"unsupported pixel format {name!r} (supported: {', '.join(PIXEL_FORMATS)})") from None


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder needs to know about a video stream (and what the .nerv header stores)."""

    width: int
    height: int
    pix_fmt: PixelFormat
    fps: Fraction
    num_frames: int
    name: str = ""
    extra: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # y4m header passthrough (A, I, X...)

    @property
    def pixels(self) -> int:
        """Luma pixels in the whole video: the denominator of bpp."""
        return self.width * self.height * self.num_frames

    def with_frames(self, n: int) -> "VideoInfo":
        return replace(self, num_frames=n)


@dataclass
class Frames:
    """A batch of consecutive frames as planes of shape (N, h, w) in native code values."""

    planes: Tuple[np.ndarray, ...]
    pix_fmt: PixelFormat

    def __post_init__(self) -> None:
        if len(self.planes) != self.pix_fmt.num_planes:
            raise ValueError(f"{self.pix_fmt.name} has {self.pix_fmt.num_planes} planes, got {len(self.planes)}")
        n = {p.shape[0] for p in self.planes}
        if len(n) != 1 or any(p.ndim != 3 for p in self.planes):
            raise ValueError("every plane must be (N, h, w) with the same N")

    @property
    def num_frames(self) -> int:
        return int(self.planes[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.planes[0].shape[2])

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[1])

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, item: slice) -> "Frames":
        if not isinstance(item, slice):
            item = slice(item, item + 1)
        return Frames(tuple(p[item] for p in self.planes), self.pix_fmt)

    @staticmethod
    def concat(batches: "list[Frames]") -> "Frames":
        if not batches:
            raise ValueError("nothing to concatenate")
        fmt = batches[0].pix_fmt
        return Frames(tuple(np.concatenate([b.planes[i] for b in batches]) for i in range(fmt.num_planes)), fmt)

    @staticmethod
    def empty(pix_fmt: PixelFormat, width: int, height: int, n: int = 0) -> "Frames":
        return Frames(tuple(np.zeros((n, h, w), pix_fmt.dtype) for h, w in pix_fmt.plane_shapes(width, height)),
                      pix_fmt)

    def to_bytes(self, index: int) -> bytes:
        """Raw planar bytes of frame ``index`` (little endian for deep formats), as y4m and rawvideo store it."""
        return b"".join(np.ascontiguousarray(p[index]).astype(self.pix_fmt.dtype, copy=False).tobytes()
                        for p in self.planes)

    @staticmethod
    def from_bytes(data: bytes, pix_fmt: PixelFormat, width: int, height: int, n: int = 1) -> "Frames":
        """Inverse of :meth:`to_bytes` for ``n`` frames stored back to back."""
        shapes = pix_fmt.plane_shapes(width, height)
        per = pix_fmt.frame_bytes(width, height)
        if len(data) != per * n:
            raise InputError(f"expected {per * n} bytes of raw video, got {len(data)}")
        arr = np.frombuffer(data, dtype=pix_fmt.dtype).reshape(n, -1)
        planes, off = [], 0
        for h, w in shapes:
            planes.append(arr[:, off:off + h * w].reshape(n, h, w))
            off += h * w
        return Frames(tuple(planes), pix_fmt)
