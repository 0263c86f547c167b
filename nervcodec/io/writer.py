"""Atomic video writers: y4m (our own), lossless FFV1 in Matroska, and PNG sequences.

PNG sequences: ffmpeg converts the colours and imageio writes the files.  The
YUV->RGB conversion must be the one every other part of nervcodec uses, so the
frames go to ffmpeg as y4m (which carries the pixel format and the colour range)
and come back as raw ``rgb24`` / ``rgb48le`` samples, with the same swscale flags
as before; imageio (``imageio.v3.imwrite``) then writes one PNG per frame, which
keeps the file handling (names, numbering, the temporary folder) in Python.
imageio's PNG plugin (Pillow) cannot write 16-bit colour, so frames deeper than
8 bits are written as 16-bit RGB PNGs by ffmpeg's PNG encoder from the same raw
samples.  Either way the pixels equal those of the former all-ffmpeg writer.

Every writer puts its output in a temporary file (or folder) *next to* the target
and moves it into place with :func:`os.replace` only when :meth:`VideoWriter.close`
succeeds.  A crash, Ctrl-C, ffmpeg failure or :meth:`VideoWriter.abort` therefore
never leaves a half-written video under the target name, and a file that was
already there stays untouched until the new one is complete.
"""
from __future__ import annotations

import io
import logging
import os
import re
import secrets
from fractions import Fraction
from typing import BinaryIO, Dict, List, Optional, Tuple

import imageio.v3 as iio
import numpy as np

from ..errors import OutputError, ToolError
from ..fsutil import discard, publish, temp_beside
from ..tools.ffmpeg import SWS_FLAGS, FFmpegProcess, Options, build_args, run_ffmpeg, start_ffmpeg
from . import y4m
from .reader import FPS_TAG
from .video import Frames, VideoInfo

__all__ = ["VideoWriter", "Y4MFileWriter", "FFV1Writer", "PNGSequenceWriter", "open_writer", "infer_format",
           "DEFAULT_PNG_PATTERN", "FORMATS"]

log = logging.getLogger("nervcodec.writer")

DEFAULT_PNG_PATTERN = "%05d.png"
#: Accepted ``fmt`` values and the aliases that mean the same thing.
FORMATS = {"y4m": "y4m", "mkv": "mkv", "ffv1": "mkv", "png": "png"}
_PATTERN_RE = re.compile(r"%0?\d*d")


def _rate(fps: Fraction) -> str:
    fps = Fraction(fps)
    return f"{fps.numerator}/{fps.denominator}"


class VideoWriter:
    """Base class: ``write`` batches, then ``close`` to publish or ``abort`` to discard.

    As a context manager it closes on success and aborts when the block raises.  A
    failed ``write`` or ``close`` aborts by itself before re-raising, so the caller
    never has to clean up.
    """

    def __init__(self, path: str, info: VideoInfo):
        self.path = path
        self.info = info
        self.frames_written = 0
        self._state = "open"  # open -> closed | aborted

    # -- subclass hooks
    def _write(self, frames: Frames) -> None:  # pragma: no cover
        raise NotImplementedError

    def _commit(self) -> None:  # pragma: no cover
        """Finish the temporary output and move it onto the target."""
        raise NotImplementedError

    def _discard(self) -> None:  # pragma: no cover
        """Stop any helper process and delete the temporary output."""
        raise NotImplementedError

    # -- public API
    def write(self, frames: Frames) -> None:
        """Append a batch of frames (same pixel format and size as ``info``)."""
        if self._state != "open":
            raise OutputError(f"{self.path}: writer is already {self._state}")
        try:
            y4m.check_frames(frames, self.info)
            if frames.num_frames == 0:
                return
            self._write(frames)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            self.abort()
            raise
        self.frames_written += frames.num_frames

    def close(self) -> None:
        """Complete the output and atomically put it in place.  Idempotent."""
        if self._state == "closed":
            return
        if self._state == "aborted":
            raise OutputError(f"{self.path}: writer was aborted; nothing was written")
        try:
            self._commit()
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot finish writing: {exc.strerror or exc}") from None
        except BaseException:
            self.abort()
            raise
        self._state = "closed"

    def abort(self) -> None:
        """Discard everything written so far; a pre-existing target is left as it was.  Idempotent."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":  # an aborted writer already reported its failure once
            self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, {self.frames_written} frames, {self._state})"


class Y4MFileWriter(VideoWriter):
    """Our own y4m writer into a temporary file beside the target."""

    def __init__(self, path: str, info: VideoInfo):
        super().__init__(path, info)
        y4m.format_header(info)  # validate the header before creating anything on disk
        self._tmp: Optional[str] = temp_beside(path, ".part.y4m")
        try:
            self._fp: BinaryIO = open(self._tmp, "wb")
            self._y4m = y4m.Y4MWriter(self._fp, info)
        except OSError as exc:
            discard(self._tmp)
            raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None

    def _write(self, frames: Frames) -> None:
        self._y4m.write(frames)

    def _commit(self) -> None:
        assert self._tmp is not None
        self._fp.close()
        publish(self._tmp, self.path)
        self._tmp = None

    def _discard(self) -> None:
        try:
            self._fp.close()
        except OSError:
            pass
        discard(self._tmp)
        self._tmp = None


class _FFmpegPipeWriter(VideoWriter):
    """Shared part of the ffmpeg writers: raw planar frames go to ffmpeg's stdin."""

    _proc: Optional[FFmpegProcess]

    def _input_options(self) -> Dict[str, object]:
        i = self.info
        return {"f": "rawvideo", "pix_fmt": i.pix_fmt.name, "s": f"{i.width}x{i.height}", "framerate": _rate(i.fps)}

    def _output_options(self) -> Dict[str, object]:
        options: Dict[str, object] = {"fps_mode": "passthrough"}
        if self._full_range:
            # Label full-range frames as such (setparams converts nothing), so an RGB conversion expands
            # the right range.  An encoder must then be told the same range, or ffmpeg would convert.
            options["vf"] = "setparams=range=pc"
        return options

    def _args(self, output: str, options: Options) -> List[str]:
        return build_args("pipe:", output, input_options=self._input_options(), streams=["0:v:0"],
                          output_options={**self._output_options(), **options})

    @property
    def _full_range(self) -> bool:
        return "COLORRANGE=FULL" in self.info.extra.get("X", "").split()

    def _start(self, args: List[str]) -> None:
        self._proc = start_ffmpeg(args, what=f"writing {self.path}", stdin=True)

    def _write(self, frames: Frames) -> None:
        assert self._proc is not None
        dtype = self.info.pix_fmt.dtype
        for i in range(frames.num_frames):
            self._proc.write(b"".join(np.ascontiguousarray(p[i], dtype=dtype).tobytes() for p in frames.planes))

    def _finish_process(self) -> None:
        assert self._proc is not None
        proc, self._proc = self._proc, None
        try:
            proc.finish()
        except BaseException:
            proc.kill()
            raise

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc = None


class FFV1Writer(_FFmpegPipeWriter):
    """Lossless FFV1 (level 3, every frame a keyframe) in Matroska, same pixel format and frame rate.

    Matroska stores millisecond timestamps, from which a reader may guess a slightly
    different rate (e.g. 120 for 120000/1001); the exact rate is kept in a stream tag
    that :mod:`nervcodec.io.reader` honours.
    """

    def __init__(self, path: str, info: VideoInfo):
        super().__init__(path, info)
        self._proc = None
        self._tmp: Optional[str] = temp_beside(path, ".part.mkv")
        options: Dict[str, object] = {"c:v": "ffv1", "level": 3, "g": 1, "slicecrc": 1,
                                      "metadata:s:v:0": f"{FPS_TAG}={_rate(info.fps)}", "f": "matroska"}
        if self._full_range:
            options["color_range"] = "pc"
        try:
            self._start(self._args(self._tmp, options))
        except BaseException:
            discard(self._tmp)
            raise

    def _commit(self) -> None:
        assert self._tmp is not None
        self._finish_process()
        publish(self._tmp, self.path)
        self._tmp = None

    def _discard(self) -> None:
        self._kill()
        discard(self._tmp)
        self._tmp = None


def _png_target(path: str) -> Tuple[str, str]:
    """(folder, file pattern) for a PNG-sequence target: a folder, ``folder/``, or ``folder/%05d.png``."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        folder, pattern = path, DEFAULT_PNG_PATTERN
    else:
        folder, pattern = os.path.dirname(path) or ".", os.path.basename(path)
    specs = _PATTERN_RE.findall(pattern.replace("%%", ""))
    if len(specs) != 1 or pattern.replace("%%", "").count("%") != 1:
        raise OutputError(f"{path}: a PNG sequence needs exactly one frame-number field such as %05d")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"{folder}: exists and is not a folder")
    return os.path.normpath(folder), pattern


def _nearest_existing_dir(folder: str) -> str:
    cur = os.path.abspath(folder)
    while not os.path.isdir(cur):
        up = os.path.dirname(cur)
        if up == cur:  # pragma: no cover - the root always exists
            break
        cur = up
    return cur


class PNGSequenceWriter(VideoWriter):
    """One PNG per frame (8-bit -> 8-bit RGB, deeper -> 16-bit RGB), numbered from 1 as ffmpeg does.

    ffmpeg converts each batch of frames (y4m in, raw RGB out); imageio writes the
    8-bit files, ffmpeg's PNG encoder the 16-bit ones (see the module notes).
    Frames go into a hidden temporary folder beside the target folder and are moved
    in on close, so an aborted run adds no files and overwrites none.  The target
    folder (and missing parents) is created only on a successful close.
    """

    #: Frames per ffmpeg conversion (and at most about this many bytes of RGB).
    CHUNK_FRAMES = 16
    CHUNK_BYTES = 48 * 1024 * 1024

    def __init__(self, path: str, info: VideoInfo):
        super().__init__(path, info)
        self.folder, self.pattern = _png_target(path)
        y4m.format_header(info)  # validate the stream before creating anything on disk
        self.deep = info.pix_fmt.bit_depth > 8
        self.rgb_fmt = "rgb48le" if self.deep else "rgb24"
        self._dtype = np.dtype("<u2") if self.deep else np.dtype(np.uint8)
        base = _nearest_existing_dir(self.folder)
        try:
            self._tmp: Optional[str] = _mkdtemp(base)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write in {base}: {exc.strerror or exc}") from None

    def _to_rgb(self, frames: Frames) -> np.ndarray:
        """ffmpeg's conversion of a batch to (N, H, W, 3) RGB samples (uint8, or uint16 for deep formats)."""
        buf = io.BytesIO()
        y4m.Y4MWriter(buf, self.info).write(frames)
        args = build_args("pipe:", "pipe:", input_options={"f": "yuv4mpegpipe"}, streams=["0:v:0"],
                          output_options={"fps_mode": "passthrough", "sws_flags": SWS_FLAGS,
                                          "pix_fmt": self.rgb_fmt, "f": "rawvideo"})
        raw = run_ffmpeg(args, what=f"converting frames to RGB for {self.path}", input=buf.getvalue(),
                         capture_stdout=True)
        n, w, h = frames.num_frames, self.info.width, self.info.height
        if len(raw) != n * h * w * 3 * self._dtype.itemsize:
            raise ToolError(f"ffmpeg returned {len(raw)} bytes of {self.rgb_fmt} for {n} frames of {w}x{h}")
        return np.frombuffer(raw, self._dtype).reshape(n, h, w, 3)

    def _write_files(self, rgb: np.ndarray, first: int) -> None:
        """Write frames numbered ``first``, ``first + 1``, ... into the temporary folder."""
        assert self._tmp is not None
        if not self.deep:
            for k, frame in enumerate(rgb):
                iio.imwrite(os.path.join(self._tmp, self.pattern % (first + k)), frame, extension=".png")
            return
        # 16-bit RGB: imageio's Pillow plugin cannot write it, ffmpeg's PNG encoder can.
        h, w = rgb.shape[1:3]
        args = build_args("pipe:", os.path.join(self._tmp, self.pattern),
                          input_options={"f": "rawvideo", "pix_fmt": self.rgb_fmt, "s": f"{w}x{h}"},
                          streams=["0:v:0"],
                          output_options={"fps_mode": "passthrough", "pix_fmt": "rgb48be", "c:v": "png",
                                          "start_number": first, "f": "image2"})
        run_ffmpeg(args, what=f"writing PNG files for {self.path}", input=np.ascontiguousarray(rgb).tobytes())

    def _write(self, frames: Frames) -> None:
        per_frame = self.info.width * self.info.height * 3 * self._dtype.itemsize
        step = max(1, min(self.CHUNK_FRAMES, self.CHUNK_BYTES // per_frame))
        for lo in range(0, frames.num_frames, step):
            part = frames[lo:lo + step]
            self._write_files(self._to_rgb(part), self.frames_written + lo + 1)

    def _commit(self) -> None:
        assert self._tmp is not None
        names = sorted(os.listdir(self._tmp))
        if len(names) != self.frames_written:
            raise ToolError(f"{len(names)} PNG files were written for {self.frames_written} frames")
        os.makedirs(self.folder, exist_ok=True)
        for name in names:
            os.replace(os.path.join(self._tmp, name), os.path.join(self.folder, name))
        os.rmdir(self._tmp)
        self._tmp = None

    def _discard(self) -> None:
        discard(self._tmp)
        self._tmp = None


def _mkdtemp(parent: str) -> str:
    for _ in range(100):
        tmp = os.path.join(parent, f".nervcodec-png.{secrets.token_hex(4)}.part")
        try:
            os.mkdir(tmp)
        except FileExistsError:
            continue
        return tmp
    raise OutputError(f"cannot find a free temporary folder name in {parent}")  # pragma: no cover


def infer_format(path: str, fmt: Optional[str] = None) -> str:
    """'y4m', 'mkv' or 'png' for ``path``; an explicit ``fmt`` wins over the extension."""
    if fmt is not None:
        key = fmt.lower().lstrip(".")
        if key not in FORMATS:
            raise OutputError(f"unknown output format {fmt!r} (use one of: {', '.join(sorted(FORMATS))})")
        return FORMATS[key]
    if path.endswith(("/", os.sep)) or os.path.isdir(path) or "%" in os.path.basename(path):
        return "png"
    ext = os.path.splitext(path)[1].lower()
    if ext == ".y4m":
        return "y4m"
    if ext == ".mkv":
        return "mkv"
    if ext == ".png":
        raise OutputError(f"{path}: PNG output is a numbered sequence; give a pattern like "
                          f"frames/{DEFAULT_PNG_PATTERN} (one frame gives frames/{DEFAULT_PNG_PATTERN % 1})")
    raise OutputError(f"{path}: cannot tell the output format from the name; use .y4m, .mkv, "
                      f"a folder/ or a pattern like out/{DEFAULT_PNG_PATTERN}")


def open_writer(path: "str | os.PathLike[str]", info: VideoInfo, fmt: Optional[str] = None) -> VideoWriter:
    """Open an atomic writer for ``path``: .y4m, .mkv (lossless FFV1) or a PNG sequence.

    ``info`` fixes the pixel format, size and frame rate of everything written.
    """
    path = os.fspath(path)
    kind = infer_format(path, fmt)
    if kind == "y4m":
        return Y4MFileWriter(path, info)
    if kind == "mkv":
        return FFV1Writer(path, info)
    if path.endswith(("/", os.sep)) or os.path.isdir(path) or "%" in os.path.basename(path):
        return PNGSequenceWriter(path, info)
    # fmt="png" with a plain name: treat the name as the folder.
    return PNGSequenceWriter(path + os.sep, info)
