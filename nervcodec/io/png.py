"""PNG sequences as input: imageio reads the files, ffmpeg converts the colours.

Design: a PNG sequence (a folder of ``*.png`` or a printf pattern such as
``frames/%05d.png``) is a list of ordinary files, so the files themselves are
listed, checked and decoded in Python with imageio (``imageio.v3.imread``),
which gives one exact numpy array per file and lets every problem name the file
that causes it.  The colour conversion to the codec's planar YUV is left to
ffmpeg, because it must be *the same* conversion as for every other input: the
decoded RGB (or grey) samples are piped to ffmpeg as ``rawvideo`` in batches,
converted with the swscale flags and the pixel-format choice
(:func:`~nervcodec.io.reader.choose_pix_fmt`) of the ffmpeg reader, and come back
as y4m parsed by :mod:`nervcodec.io.y4m`.  The planes are therefore identical to
what ``ffmpeg -i frames/%05d.png`` (the image2 demuxer) gave before this reader
existed.  Two kinds of PNG are left to ffmpeg's own PNG decoder, which then
converts them in the same run (exactly the old path): 16-bit colour (RGB, RGBA,
grey+alpha), which imageio's PNG plugin (Pillow) cannot hold (it would silently
keep 8 bits), and palette PNGs, whose colours ffmpeg converts through its
palette path (expanding them to RGB first would round luma differently by one
code value now and then).  Every other PNG (1-16-bit grey, 8-bit RGB, RGBA,
grey+alpha) is read by imageio.

Rules worth knowing:

* A folder holds the ``*.png`` files directly inside it (not hidden ones), in
  natural order of their names (``f2.png`` before ``f10.png``).
* A pattern has exactly one ``%d``-style field.  The sequence starts at the
  smallest number for which a file exists (ffmpeg's image2 only tries 0-4) and
  runs over consecutive numbers until one is missing, as image2 does.
* Every frame must have the size and PNG mode (bit depth and colour type) of the
  first; otherwise a one-line :class:`InputError` names the file that differs.
* Alpha is ignored, as ffmpeg's conversion to YUV ignores it.
* The frame rate is not stored in PNG files: it is given by the caller
  (``open_video(path, fps=...)``) and defaults to 25, as in ffmpeg's image2.
"""
from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, List, Optional, Tuple, Union

import imageio.v3 as iio
import numpy as np

from ..errors import ConfigError, InputError, ToolError, ToolNotFoundError
from ..tools.ffmpeg import SWS_FLAGS, build_args, run_ffmpeg
from . import y4m
from .reader import VideoReader, choose_pix_fmt
from .video import Frames

__all__ = ["PNG_SIGNATURE", "DEFAULT_PNG_FPS", "PNGHeader", "read_png_header", "PNGSequenceReader", "parse_fps",
           "is_png_sequence", "sequence_files", "sequence_name", "FpsLike"]

log = logging.getLogger("nervcodec.png")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: ffmpeg's image2 default rate, used when the caller gives none.
DEFAULT_PNG_FPS = Fraction(25)
#: At most this many frames, and about this many raw bytes, go to one ffmpeg conversion.
CHUNK_FRAMES = 16
CHUNK_BYTES = 48 * 1024 * 1024

FpsLike = Union[Fraction, int, float, str]

_COLOUR_NAMES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
_VALID_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_FIELD_RE = re.compile(r"%(0?)(\d*)d")


def parse_fps(value: FpsLike) -> Fraction:
    """A frame rate from a Fraction, a number or a string such as ``"25"``, ``"29.97"``, ``"30000/1001"``.

    A bad or non-positive rate is a :class:`ConfigError`.
    """
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError
            rate = Fraction(repr(value))  # 29.97 -> 2997/100, not the binary expansion
        elif isinstance(value, (Fraction, int)):
            rate = Fraction(value)
        elif isinstance(value, str):
            rate = Fraction(value.strip())
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError, TypeError):
        raise ConfigError(f"--fps must be a positive number such as 25 or 30000/1001, got {value!r}") from None
    if rate <= 0 or rate > 1_000_000 or rate.denominator > 1_000_000:
        raise ConfigError(f"--fps must be a positive number such as 25 or 30000/1001, got {value!r}")
    return rate


# --------------------------------------------------------------------------- PNG header


@dataclass(frozen=True)
class PNGHeader:
    """The IHDR facts of one PNG file: size, bit depth and colour type."""

    width: int
    height: int
    bit_depth: int
    colour_type: int

    @property
    def mode(self) -> str:
        """Human-readable mode, e.g. ``8-bit RGB``."""
        return f"{self.bit_depth}-bit {_COLOUR_NAMES[self.colour_type]}"

    @property
    def is_grey(self) -> bool:
        return self.colour_type in (0, 4)

    @property
    def ffmpeg_pix_fmt(self) -> str:
        """The pixel format ffmpeg's PNG decoder gives such a file (what the image2 path converted from)."""
        depth, ct = self.bit_depth, self.colour_type
        if ct == 3:
            return "pal8"
        if ct == 0:
            return {1: "monob", 16: "gray16be"}.get(depth, "gray")
        if ct == 4:
            return "ya16be" if depth == 16 else "ya8"
        if ct == 2:
            return "rgb48be" if depth == 16 else "rgb24"
        return "rgba64be" if depth == 16 else "rgba"

    @property
    def read_by_imageio(self) -> bool:
        """imageio reads all but palette and 16-bit colour PNGs, which ffmpeg decodes (see the module notes)."""
        return self.colour_type == 0 or (self.colour_type in (2, 4, 6) and self.bit_depth == 8)

    @property
    def raw_pix_fmt(self) -> str:
        """The rawvideo format imageio's samples are piped to ffmpeg in (alpha dropped)."""
        if self.is_grey:
            return "gray16le" if self.bit_depth == 16 else "gray"
        return "rgb24"

    @property
    def raw_shape(self) -> Tuple[int, ...]:
        return (self.height, self.width) if self.is_grey else (self.height, self.width, 3)

    @property
    def raw_dtype(self) -> np.dtype:
        return np.dtype("<u2") if self.bit_depth == 16 else np.dtype(np.uint8)



def read_png_header(path: str) -> PNGHeader:
    """Size and mode from a PNG file's IHDR chunk (33 bytes read); InputError if it is not a PNG."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(33)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise InputError(f"{path}: file is empty")
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise InputError(f"{path}: not a PNG file")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if width == 0 or height == 0 or colour not in _VALID_DEPTHS or depth not in _VALID_DEPTHS[colour]:
        raise InputError(f"{path}: damaged PNG header ({width}x{height}, bit depth {depth}, colour type {colour})")
    return PNGHeader(width, height, depth, colour)


# --------------------------------------------------------------------------- finding the files


def _natural_key(name: str) -> Tuple:
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts if p), name


def _is_png_name(name: str) -> bool:
    return name.lower().endswith(".png") and not name.startswith(".")


def is_png_sequence(path: str) -> bool:
    """Does ``path`` name a PNG sequence: an existing folder, or a ``%d`` pattern of ``.png`` files?"""
    if os.path.isdir(path):
        return True
    base = os.path.basename(path)
    return "%" in base and base.lower().endswith(".png")


def _folder_files(folder: str) -> List[str]:
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    pngs = [n for n in names if _is_png_name(n) and os.path.isfile(os.path.join(folder, n))]
    if not pngs:
        if not names:
            raise InputError(f"{folder}: is an empty folder, not a video or a PNG sequence")
        raise InputError(f"{folder}: is a folder without .png files; give a video file, a folder of PNGs "
                         f"or a pattern such as {os.path.join(folder, '%05d.png')}")
    return [os.path.join(folder, n) for n in sorted(pngs, key=_natural_key)]


def _pattern_files(pattern_path: str) -> List[str]:
    folder, pattern = os.path.split(pattern_path)
    folder = folder or "."
    fields = _FIELD_RE.findall(pattern.replace("%%", ""))
    if len(fields) != 1 or pattern.replace("%%", "").count("%") != 1:
        raise InputError(f"{pattern_path}: a PNG pattern needs exactly one frame-number field such as %05d")
    if not os.path.isdir(folder):
        raise InputError(f"{pattern_path}: folder {folder} not found")
    # A regex for the names the pattern can produce; each candidate is confirmed by formatting it back.
    literal = re.split(r"%0?\d*d", pattern.replace("%%", "\0"))
    rx = re.compile(r"(\d+)".join(re.escape(p.replace("\0", "%")) for p in literal) + r"\Z")
    numbers = set()
    for name in os.listdir(folder):
        m = rx.match(name)
        if m and pattern % int(m.group(1)) == name:
            numbers.add(int(m.group(1)))
    if not numbers:
        raise InputError(f"{pattern_path}: no file matches the pattern")
    first = min(numbers)
    files = []
    n = first
    while os.path.isfile(os.path.join(folder, pattern % n)):
        files.append(os.path.join(folder, pattern % n))
        n += 1
    later = sorted(k for k in numbers if k >= n)
    if later:
        log.warning("%s: frames %d..%d read; number %d is missing, so %d later file(s) from %d on are ignored",
                    pattern_path, first, n - 1, n, len(later), later[0])
    if not files:  # pragma: no cover - the first number exists, unless it vanished meanwhile
        raise InputError(f"{pattern_path}: no file matches the pattern")
    return files


def sequence_files(path: str) -> List[str]:
    """The files of a PNG sequence in frame order (folder: natural name order; pattern: consecutive numbers)."""
    return _folder_files(path) if os.path.isdir(path) else _pattern_files(path)


def sequence_name(path: str) -> str:
    """The video's name: the folder's name (of a folder, or of the folder holding a pattern)."""
    folder = path if os.path.isdir(path) else (os.path.dirname(path) or ".")
    return os.path.basename(os.path.normpath(os.path.abspath(folder)))


# --------------------------------------------------------------------------- the reader


class PNGSequenceReader(VideoReader):
    """A PNG sequence read file by file with imageio and converted to YUV by ffmpeg in batches.

    Random access is free (one file per frame), so ``iter_frames`` and ``read`` read
    only the files of the frames asked for.
    """

    def __init__(self, path: str, name: str = "", fps: Optional[FpsLike] = None):
        self.files = sequence_files(path)
        first = read_png_header(self.files[0])
        for f in self.files[1:]:
            h = read_png_header(f)
            if (h.width, h.height, h.bit_depth, h.colour_type) != (first.width, first.height, first.bit_depth,
                                                                   first.colour_type):
                raise InputError(f"{f}: {h.width}x{h.height} {h.mode}, but {os.path.basename(self.files[0])} is "
                                 f"{first.width}x{first.height} {first.mode}; all frames of a PNG sequence must "
                                 f"share size and mode")
        self.png = first
        self.rate = DEFAULT_PNG_FPS if fps is None else parse_fps(fps)
        self.out_fmt = choose_pix_fmt(first.ffmpeg_pix_fmt)
        self._header: Optional[y4m.Y4MHeader] = None
        head, _ = self._convert(0, 1)  # validates the first file and gives the y4m header ffmpeg writes
        self._header = head
        super().__init__(path, head.info(len(self.files), name or sequence_name(path)))
        log.debug("%s: %d PNG files, %s -> %s at %s fps", path, len(self.files), first.mode, self.out_fmt.name,
                  self.rate)

    # -- files -> raw samples
    def _imread(self, path: str) -> np.ndarray:
        try:
            arr = np.asarray(iio.imread(path, index=0, extension=".png"))
        except Exception as exc:  # imageio/Pillow raise many kinds for damaged files
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{path}: cannot read the PNG file ({reason})") from None
        p = self.png
        if arr.dtype == bool:  # 1-bit grey
            arr = arr.astype(np.uint8) * np.uint8(255)
        if arr.ndim == 3 and arr.shape[2] in (2, 4):  # alpha is ignored, as ffmpeg's YUV conversion ignores it
            arr = arr[..., :-1]
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if p.bit_depth == 16 and arr.dtype.kind in "iu" and arr.dtype != p.raw_dtype:
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise InputError(f"{path}: 16-bit PNG decoded to values outside 0..65535")
            arr = arr.astype(p.raw_dtype)
        if arr.shape != p.raw_shape or arr.dtype.itemsize != p.raw_dtype.itemsize or arr.dtype.kind != "u":
            raise InputError(f"{path}: decodes to {arr.dtype} samples of shape {arr.shape}, unlike the first "
                             f"frame ({p.width}x{p.height} {p.mode}); all frames must share size and mode")
        return arr

    def _raw(self, lo: int, hi: int) -> bytes:
        """Raw ``png.raw_pix_fmt`` samples of frames lo..hi-1, read by imageio."""
        p = self.png
        return b"".join(np.ascontiguousarray(self._imread(f), dtype=p.raw_dtype).tobytes() for f in self.files[lo:hi])

    def _file_bytes(self, lo: int, hi: int) -> bytes:
        data = []
        for f in self.files[lo:hi]:
            try:
                with open(f, "rb") as fp:
                    data.append(fp.read())
            except OSError as exc:
                raise InputError(f"{f}: cannot read: {exc.strerror or exc}") from None
        return b"".join(data)

    # -- samples -> YUV
    def _convert(self, lo: int, hi: int) -> Tuple[y4m.Y4MHeader, Frames]:
        """Frames lo..hi-1 in ``out_fmt``, converted by one ffmpeg run (and the y4m header it wrote)."""
        p = self.png
        output = {"fps_mode": "passthrough", "sws_flags": SWS_FLAGS, "pix_fmt": self.out_fmt.name, "strict": -1,
                  "f": "yuv4mpegpipe"}
        what = f"converting {self.files[lo]}" + (f" .. {os.path.basename(self.files[hi - 1])}" if hi - lo > 1 else "")
        if p.read_by_imageio:
            source = {"f": "rawvideo", "pix_fmt": p.raw_pix_fmt, "s": f"{p.width}x{p.height}", "framerate": self.rate}
            data = self._raw(lo, hi)
        else:  # palette or 16-bit colour: ffmpeg's PNG decoder reads the files (see the module notes)
            source = {"f": "png_pipe", "framerate": self.rate}
            data = self._file_bytes(lo, hi)
        args = build_args("pipe:", "pipe:", input_options=source, streams=["0:v:0"], output_options=output)
        try:
            out = run_ffmpeg(args, what=what, input=data, capture_stdout=True)
        except ToolNotFoundError:
            raise
        except ToolError as exc:
            if p.read_by_imageio:
                raise
            raise InputError(f"{what}: ffmpeg cannot decode the PNG data ({str(exc).splitlines()[0]})") from None
        src = f"{self.files[lo]} (via ffmpeg)"
        stream = io.BytesIO(out)
        header = y4m.read_header(stream, src)
        expected = self._header
        if expected is not None and (header.width, header.height, header.fps, header.pix_fmt) != (
                expected.width, expected.height, expected.fps, expected.pix_fmt):
            raise InputError(f"{what}: the frames changed size or format within the sequence")
        frames = y4m.read_frames(stream, header, hi - lo, lo, src)
        got = 0 if frames is None else frames.num_frames
        if frames is None or got != hi - lo:
            raise InputError(f"{what}: ffmpeg converted {got} of {hi - lo} frames; a file may be damaged")
        return header, frames

    def _chunk(self) -> int:
        per_frame = self.png.width * self.png.height * 4 * (2 if self.png.bit_depth == 16 else 1)
        return max(1, min(CHUNK_FRAMES, CHUNK_BYTES // per_frame))

    def _iter_range(self, batch: int, start: int, stop: int) -> Iterator[Frames]:
        step = self._chunk()
        for lo in range(start, stop, batch):
            hi = min(lo + batch, stop)
            parts = [self._convert(i, min(i + step, hi))[1] for i in range(lo, hi, step)]
            yield parts[0] if len(parts) == 1 else Frames.concat(parts)
