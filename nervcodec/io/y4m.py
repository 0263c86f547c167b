"""Our own YUV4MPEG2 (.y4m) parser and writer.

Y4M is the lossless interchange format of the codec: it stores planar code values
with an exact rational frame rate, so a source read here and written back is
bit-identical.  The same parser also decodes every other input, because
:mod:`nervcodec.io.reader` asks ffmpeg to convert to a y4m pipe; one parser means
one set of rules for size, rate and pixel-format validation.

Layout: one stream header line ``YUV4MPEG2 W<w> H<h> F<n>:<d> [I..] [A..] [C..] [X..]``,
then per frame a ``FRAME[ params]`` line followed by the raw planes (Y, then U and V;
deep formats as little-endian 16-bit words).

Frames are streamed: nothing here ever reads a whole file.  For a regular file the
frame count comes from the file size, and a size that does not fit whole frames is
diagnosed (truncated last frame, or frame headers of varying length, which are then
indexed one by one).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import InputError, OutputError
from .video import Frames, PixelFormat, VideoInfo, pixel_format

__all__ = [
    "Y4M_MAGIC", "MAX_DIMENSION", "MAX_PIXELS", "COLORSPACE_TO_PIX_FMT", "PIX_FMT_TO_COLORSPACE",
    "Y4MHeader", "parse_header", "read_header", "read_frame_header", "read_frames", "iter_stream",
    "Y4MFileReader", "Y4MWriter", "format_header", "check_frames",
]

log = logging.getLogger("nervcodec.y4m")

Y4M_MAGIC = b"YUV4MPEG2"
FRAME_MAGIC = b"FRAME"
#: Bounds checked before any allocation, so a corrupt header cannot ask for gigabytes.
MAX_DIMENSION = 16384
MAX_PIXELS = 1 << 28
#: Longest stream header / frame header line accepted (X parameters can be long, but not unbounded).
MAX_HEADER_LINE = 64 * 1024
MAX_FRAME_LINE = 4096

#: Y4M ``C`` tag -> our pixel format name.  All 4:2:0 chroma sitings decode to the same planes.
COLORSPACE_TO_PIX_FMT: Dict[str, str] = {
    "420jpeg": "yuv420p", "420paldv": "yuv420p", "420mpeg2": "yuv420p", "420": "yuv420p",
    "422": "yuv422p", "444": "yuv444p", "mono": "gray",
    "420p10": "yuv420p10le", "422p10": "yuv422p10le", "444p10": "yuv444p10le", "mono10": "gray10le",
    "420p12": "yuv420p12le", "444p12": "yuv444p12le",
}
#: Canonical ``C`` tag written for each pixel format (what ffmpeg writes by default, too).
PIX_FMT_TO_COLORSPACE: Dict[str, str] = {
    "yuv420p": "420jpeg", "yuv422p": "422", "yuv444p": "444", "gray": "mono",
    "yuv420p10le": "420p10", "yuv422p10le": "422p10", "yuv444p10le": "444p10", "gray10le": "mono10",
    "yuv420p12le": "420p12", "yuv444p12le": "444p12",
}
DEFAULT_COLORSPACE = "420jpeg"


@dataclass(frozen=True)
class Y4MHeader:
    """A parsed stream header.  ``extra`` keeps I, A, the original C and X tags for passthrough."""

    width: int
    height: int
    fps: Fraction
    pix_fmt: PixelFormat
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def frame_bytes(self) -> int:
        return self.pix_fmt.frame_bytes(self.width, self.height)

    def info(self, num_frames: int, name: str = "") -> VideoInfo:
        return VideoInfo(self.width, self.height, self.pix_fmt, self.fps, num_frames, name, dict(self.extra))


# --------------------------------------------------------------------------- parsing


def _positive_int(text: str, what: str, source: str) -> int:
    # isdigit() alone would accept "²"; require plain ASCII digits so "W-5" or "W1e3" are rejected.
    if not text or not text.isascii() or not text.isdigit():
        raise InputError(f"{source}: invalid {what} {text!r} in y4m header")
    value = int(text)
    if value <= 0:
        raise InputError(f"{source}: {what} must be positive, got {value}")
    return value


def _ratio(text: str, what: str, source: str) -> Tuple[int, int]:
    num, sep, den = text.partition(":")
    if not sep or not num.isascii() or not num.isdigit() or not den.isascii() or not den.isdigit():
        raise InputError(f"{source}: invalid {what} {text!r} in y4m header (expected N:D)")
    return int(num), int(den)


def parse_header(line: bytes, source: str = "y4m") -> Y4MHeader:
    """Parse one stream header line (with or without the trailing newline).

    Validation is strict because everything downstream trusts these numbers: the
    size bounds are checked here, before any buffer is allocated.
    """
    if not line.startswith(Y4M_MAGIC):
        raise InputError(f"{source}: not a y4m file (it does not start with YUV4MPEG2)")
    body = line[len(Y4M_MAGIC):].rstrip(b"\n")
    if body and not body.startswith(b" "):
        raise InputError(f"{source}: malformed y4m header (no space after YUV4MPEG2)")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"{source}: y4m header contains non-ASCII bytes") from None
    width = height = None
    fps: Optional[Fraction] = None
    colorspace: Optional[str] = None
    extra: Dict[str, str] = {}
    xparams: List[str] = []
    for token in text.split(" "):
        if not token:
            continue  # tolerate doubled spaces
        tag, value = token[0], token[1:]
        if tag == "W":
            width = _positive_int(value, "width", source)
        elif tag == "H":
            height = _positive_int(value, "height", source)
        elif tag == "F":
            num, den = _ratio(value, "frame rate", source)
            if num == 0 or den == 0:
                raise InputError(f"{source}: frame rate F{value} is unknown or invalid; a y4m input needs a real rate")
            fps = Fraction(num, den)
        elif tag == "C":
            colorspace = value
        elif tag == "X":
            xparams.append(value)
        elif tag in "IA":
            extra[tag] = value
        else:
            # The spec reserves other letters; keep them rather than fail, but only once each.
            log.debug("%s: ignoring unknown y4m header tag %r", source, token)
    if width is None or height is None:
        raise InputError(f"{source}: y4m header lacks {'W (width)' if width is None else 'H (height)'}")
    if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > MAX_PIXELS:
        raise InputError(f"{source}: frame size {width}x{height} is too large (at most {MAX_DIMENSION} per side)")
    if fps is None:
        raise InputError(f"{source}: y4m header lacks F (frame rate)")
    cs = colorspace if colorspace is not None else DEFAULT_COLORSPACE
    if cs not in COLORSPACE_TO_PIX_FMT:
        raise InputError(f"{source}: unsupported y4m colour space C{cs} "
                         f"(supported: {', '.join(COLORSPACE_TO_PIX_FMT)})")
    if colorspace is not None:
        extra["C"] = colorspace
    if xparams:
        extra["X"] = " ".join(xparams)
    return Y4MHeader(width, height, fps, pixel_format(COLORSPACE_TO_PIX_FMT[cs]), extra)


def read_header(fp: BinaryIO, source: str = "y4m") -> Y4MHeader:
    """Read and parse the stream header at the current position of ``fp``.

    The line is read with a length limit so a binary file that happens to have no
    newline is rejected without being slurped into memory.
    """
    line = fp.readline(MAX_HEADER_LINE + 1)
    if not line:
        raise InputError(f"{source}: file is empty")
    if not line.startswith(Y4M_MAGIC):
        raise InputError(f"{source}: not a y4m file (it does not start with YUV4MPEG2)")
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEADER_LINE:
            raise InputError(f"{source}: y4m header line is longer than {MAX_HEADER_LINE} bytes")
        raise InputError(f"{source}: y4m header is cut off (no end of line)")
    return parse_header(line, source)


def read_frame_header(fp: BinaryIO, index: int, source: str = "y4m") -> Optional[bytes]:
    """Read one ``FRAME[ params]`` line; None at a clean end of stream, InputError otherwise."""
    line = fp.readline(MAX_FRAME_LINE + 1)
    if not line:
        return None
    if line.startswith(FRAME_MAGIC) and line[5:6] in (b"\n", b" ") and line.endswith(b"\n"):
        return line
    if not line.endswith(b"\n") and len(line) <= MAX_FRAME_LINE and (
            FRAME_MAGIC.startswith(line) or line.startswith(FRAME_MAGIC)):
        raise InputError(f"{source}: truncated y4m file: the header of frame {index} is cut off")
    raise InputError(f"{source}: corrupt y4m data: expected a FRAME header for frame {index}")


def _read_exact_into(fp: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``fp``; return the number of bytes actually read (short only at EOF)."""
    got = 0
    total = len(view)
    while got < total:
        n = fp.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got


def _split_planes(buf: np.ndarray, header: Y4MHeader, n: int) -> Frames:
    """Turn ``n`` raw frames (uint8 rows) into contiguous, writable planes of the native dtype."""
    fmt = header.pix_fmt
    words = buf[:n].view(fmt.dtype)  # (n, frame_bytes / itemsize)
    planes = []
    off = 0
    for h, w in fmt.plane_shapes(header.width, header.height):
        planes.append(np.ascontiguousarray(words[:, off:off + h * w]).reshape(n, h, w))
        off += h * w
    return Frames(tuple(planes), fmt)


def read_frames(fp: BinaryIO, header: Y4MHeader, max_frames: int, first_index: int = 0,
                source: str = "y4m") -> Optional[Frames]:
    """Read up to ``max_frames`` frames from the current position; None if the stream is at its end.

    A frame whose data stops short is reported as a truncated file, never silently dropped.
    """
    per = header.frame_bytes
    buf = np.empty((max_frames, per), np.uint8)
    n = 0
    while n < max_frames:
        if read_frame_header(fp, first_index + n, source) is None:
            break
        got = _read_exact_into(fp, memoryview(buf[n]))
        if got != per:
            raise InputError(f"{source}: truncated y4m file: frame {first_index + n} has {got} of {per} bytes")
        n += 1
    if n == 0:
        return None
    return _split_planes(buf, header, n)


def iter_stream(fp: BinaryIO, header: Y4MHeader, batch: int, source: str = "y4m") -> Iterator[Frames]:
    """Yield batches of frames from a sequential stream (a pipe) until it ends."""
    index = 0
    while True:
        frames = read_frames(fp, header, batch, index, source)
        if frames is None:
            return
        index += frames.num_frames
        yield frames


# --------------------------------------------------------------------------- file reader


class Y4MFileReader:
    """Random-access reader of a y4m *file*: frame count from the size, frames streamed by seeking.

    Most files have identical ``FRAME\\n`` headers, so frame ``i`` starts at
    ``header + i * stride``.  When the size does not fit that layout the frame headers
    are walked once (reading only the small header lines) to tell a truncated file from
    one with per-frame parameters; the latter gets an offset index.
    """

    def __init__(self, path: str, name: str = ""):
        self.path = path
        self.source = os.path.basename(path) or path
        try:
            self._fp: BinaryIO = open(path, "rb")
        except OSError as exc:
            raise InputError(f"cannot open {path!r}: {exc.strerror or exc}") from None
        try:
            st = os.fstat(self._fp.fileno())
            self.header = read_header(self._fp, self.source)
            self._data_start = self._fp.tell()
            self._offsets: Optional[List[int]] = None
            self._stride = 0
            self.num_frames = self._count_frames(st.st_size)
        except BaseException:
            self._fp.close()
            raise
        self.info = self.header.info(self.num_frames, name)

    def _count_frames(self, size: int) -> int:
        per = self.header.frame_bytes
        payload = size - self._data_start
        if payload == 0:
            raise InputError(f"{self.source}: y4m file has a header but no frames")
        first = read_frame_header(self._fp, 0, self.source)
        if first is None:  # pragma: no cover - payload > 0 guarantees a line
            raise InputError(f"{self.source}: y4m file has a header but no frames")
        stride = len(first) + per
        if payload % stride == 0:
            n = payload // stride
            # Cheap confirmation that the last frame really starts where the fixed layout says.
            self._fp.seek(self._data_start + (n - 1) * stride)
            try:
                confirmed = read_frame_header(self._fp, n - 1, self.source) is not None
            except InputError:
                confirmed = False  # not where a fixed layout puts it: let the scan say what is wrong
            if confirmed:
                self._stride = stride
                return n
        return self._scan(size)

    def _scan(self, size: int) -> int:
        """Walk the frame headers to index variable-length headers or pinpoint a truncation."""
        per = self.header.frame_bytes
        offsets: List[int] = []
        pos = self._data_start
        self._fp.seek(pos)
        while pos < size:
            line = read_frame_header(self._fp, len(offsets), self.source)
            if line is None:
                break
            have = size - pos - len(line)
            if have < per:
                raise InputError(f"{self.source}: truncated y4m file: frame {len(offsets)} has {max(have, 0)} "
                                 f"of {per} bytes")
            offsets.append(pos)
            pos += len(line) + per
            self._fp.seek(pos)
        if not offsets:
            raise InputError(f"{self.source}: y4m file has a header but no frames")
        self._offsets = offsets
        return len(offsets)

    def _offset(self, index: int) -> int:
        if self._offsets is not None:
            return self._offsets[index]
        return self._data_start + index * self._stride

    def iter_frames(self, batch: int, start: int, stop: int) -> Iterator[Frames]:
        """Yield frames ``start <= i < stop`` in batches of at most ``batch``.

        Each iterator remembers its own file position, so several may be interleaved.
        """
        if start >= stop:
            return
        pos = self._offset(start)
        index = start
        while index < stop:
            n = min(batch, stop - index)
            self._fp.seek(pos)
            frames = read_frames(self._fp, self.header, n, index, self.source)
            got = frames.num_frames if frames is not None else 0
            if got < n:
                raise InputError(f"{self.source}: y4m file ended at frame {index + got} although "
                                 f"{self.num_frames} frames were expected (was it changed while reading?)")
            pos = self._fp.tell()
            index += n
            assert frames is not None
            yield frames

    def close(self) -> None:
        self._fp.close()


# --------------------------------------------------------------------------- writer


def format_header(info: VideoInfo) -> bytes:
    """The stream header for ``info``: its own pixel format and exact frame rate.

    I, A and X tags from ``info.extra`` pass through; the C tag always matches the
    pixel format (the original 4:2:0 siting variant is kept when it still applies).
    ``XYSCSS`` is dropped because it merely repeats C and would contradict it if the
    pixel format changed.
    """
    fmt = info.pix_fmt
    if fmt.name not in PIX_FMT_TO_COLORSPACE:
        raise OutputError(f"pixel format {fmt.name} cannot be stored in y4m")
    if info.width <= 0 or info.height <= 0:
        raise OutputError(f"invalid frame size {info.width}x{info.height}")
    fps = Fraction(info.fps)
    if fps <= 0:
        raise OutputError(f"invalid frame rate {fps}")
    cs = PIX_FMT_TO_COLORSPACE[fmt.name]
    orig = info.extra.get("C")
    if orig is not None and COLORSPACE_TO_PIX_FMT.get(orig) == fmt.name:
        cs = orig
    parts = [Y4M_MAGIC.decode(), f"W{info.width}", f"H{info.height}", f"F{fps.numerator}:{fps.denominator}"]
    parts.append(f"I{info.extra.get('I', 'p')}")
    parts.append(f"A{info.extra.get('A', '0:0')}")
    parts.append(f"C{cs}")
    for x in info.extra.get("X", "").split():
        if not x.startswith("YSCSS="):
            parts.append(f"X{x}")
    return (" ".join(parts) + "\n").encode("ascii")


class Y4MWriter:
    """Writes frames to an already open binary file object (the atomic file handling is the caller's)."""

    def __init__(self, fp: BinaryIO, info: VideoInfo):
        self.fp = fp
        self.info = info
        self.frames_written = 0
        self.fp.write(format_header(info))

    def write(self, frames: Frames) -> None:
        check_frames(frames, self.info)
        dtype = self.info.pix_fmt.dtype
        for i in range(frames.num_frames):
            self.fp.write(b"FRAME\n")
            for plane in frames.planes:
                self.fp.write(np.ascontiguousarray(plane[i], dtype=dtype).data)
        self.frames_written += frames.num_frames


def check_frames(frames: Frames, info: VideoInfo) -> None:
    """Refuse a batch that does not match the stream being written (a caller bug, reported clearly)."""
    if frames.pix_fmt.name != info.pix_fmt.name:
        raise OutputError(f"frames are {frames.pix_fmt.name} but the output was opened for {info.pix_fmt.name}")
    if (frames.width, frames.height) != (info.width, info.height):
        raise OutputError(f"frames are {frames.width}x{frames.height} but the output was opened for "
                          f"{info.width}x{info.height}")
