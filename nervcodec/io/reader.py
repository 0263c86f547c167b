"""Streaming video readers: our own y4m parser for .y4m, ffmpeg piping y4m for everything else.

PNG sequences (a folder of PNGs or a pattern like ``frames/%05d.png``) have their
own reader in :mod:`nervcodec.io.png`: imageio reads the files (ffmpeg's PNG
decoder only palette and 16-bit colour ones) and ffmpeg converts the colours,
with the same flags and pixel-format choice as below.
Everything else ffmpeg can open (mp4, mkv, avi, other image sequences, ...) is decoded as
``ffmpeg -i IN -map 0:V:0 -fps_mode cfr -f yuv4mpegpipe -strict -1 -pix_fmt PF pipe:``
and parsed by :mod:`nervcodec.io.y4m`, so size and rational frame rate come out
exactly as ffmpeg knows them and both paths share one validator.  The command
lines are compiled by :func:`~nervcodec.tools.ffmpeg.build_args` (ffmpeg-python).

Choices worth knowing:

* ``0:V:0`` (capital V) is the first *real* video stream; cover art and thumbnails
  attached to audio files are skipped.
* ``PF`` follows the source's own pixel format (from ffmpeg's stream description,
  there being no ffprobe): 4:2:0/4:2:2/4:4:4 and gray are kept, 9-10 bit sources
  become the ``p10le`` formats and deeper ones ``p12le``; RGB becomes 4:4:4;
  anything unrecognised becomes yuv420p.
* Frame rate: a y4m stream has one constant rate, so the pipe is produced with
  ``-fps_mode cfr`` at ffmpeg's nominal rate for the stream.  For constant-rate
  sources (nearly all camera and test material) this is the identity; a variable
  rate source is resampled onto that grid by ffmpeg (frames duplicated or dropped)
  so the timeline and duration are preserved.  Because a guessed rate that is
  slightly off would make ffmpeg drop or duplicate a frame every few hundred, files
  written by :mod:`nervcodec.io.writer` carry their exact rate in a
  ``NERVCODEC_FPS`` stream tag and that rate is forced with ``-r`` on decode.
* Frame count: a fast pass ``-c copy -f null`` (no decoding) and ffmpeg's last
  ``frame=`` report.  It is exact for ordinary streams; if it cannot be read, a
  full decode pass with the same settings as the real decode counts the frames.
  Should the decode still disagree (exotic streams), the frames are truncated to,
  or padded with the last frame up to, the promised count with a warning, so that
  ``info.num_frames`` always holds.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError, InputError, ToolError, ToolNotFoundError
from ..tools.ffmpeg import SWS_FLAGS, FFmpegProcess, build_args, run_ffmpeg, start_ffmpeg
from . import y4m
from .video import Frames, PixelFormat, VideoInfo, pixel_format

__all__ = ["VideoReader", "Y4MVideoReader", "FFmpegVideoReader", "ProbeResult", "probe", "choose_pix_fmt",
           "open_video", "FPS_TAG"]

log = logging.getLogger("nervcodec.reader")

#: ffmpeg's "tty" demuxer renders any text file as video with these codecs; nobody means that.
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
#: Stream tag in which our own mkv writer stores the exact frame rate (n/d).
FPS_TAG = "NERVCODEC_FPS"


# --------------------------------------------------------------------------- base class


class VideoReader:
    """A video opened for streaming reads.  Use as a context manager.

    ``info`` is complete at open time (size, pixel format, exact fps, frame count,
    ``name`` = file stem).  Frames come in the native planar form of ``info.pix_fmt``.
    """

    info: VideoInfo

    def __init__(self, path: str, info: VideoInfo):
        self.path = path
        self.info = info
        self.closed = False

    # Subclasses implement this for 0 <= start < stop <= num_frames.
    def _iter_range(self, batch: int, start: int, stop: int) -> Iterator[Frames]:  # pragma: no cover
        raise NotImplementedError

    def _bounds(self, start: int, stop: Optional[int]) -> Tuple[int, int]:
        """Python slice semantics (negative indices count from the end; out of range clamps)."""
        lo, hi, _ = slice(start, stop).indices(self.info.num_frames)
        return lo, max(lo, hi)

    def iter_frames(self, batch: int = 16, start: int = 0, stop: Optional[int] = None) -> Iterator[Frames]:
        """Yield frames ``start <= i < stop`` in batches of at most ``batch`` frames.

        Only one batch is in memory at a time, which is what lets long or large videos
        be processed on small machines.
        """
        # A plain function (not a generator) so that bad arguments fail at the call, not at the first next().
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if self.closed:
            raise InputError(f"{self.path}: reader is closed")
        lo, hi = self._bounds(start, stop)
        return self._iter_range(batch, lo, hi) if lo < hi else iter(())

    def read(self, start: int = 0, stop: Optional[int] = None) -> Frames:
        """All frames ``start <= i < stop`` as one batch (preallocated, so no concatenation copy)."""
        lo, hi = self._bounds(start, stop)
        out = Frames.empty(self.info.pix_fmt, self.info.width, self.info.height, hi - lo)
        pos = 0
        for frames in self.iter_frames(batch=16, start=lo, stop=hi):
            n = frames.num_frames
            for dst, src in zip(out.planes, frames.planes):
                dst[pos:pos + n] = src
            pos += n
        return out

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (f"{type(self).__name__}({self.path!r}, {i.width}x{i.height} {i.pix_fmt.name} "
                f"{i.fps} fps, {i.num_frames} frames)")


# --------------------------------------------------------------------------- y4m


class Y4MVideoReader(VideoReader):
    """A .y4m file read by our own parser, with random access by seeking."""

    def __init__(self, path: str, name: str):
        self._file = y4m.Y4MFileReader(path, name)
        super().__init__(path, self._file.info)

    def _iter_range(self, batch: int, start: int, stop: int) -> Iterator[Frames]:
        return self._file.iter_frames(batch, start, stop)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


# --------------------------------------------------------------------------- raw planar (.yuv)

RAW_EXTENSIONS = (".yuv",)


class RawVideoReader(VideoReader):
    """Headerless planar frames back to back (``.yuv``): the size, pixel format and rate come from
    the caller (``--size``, ``--pix-fmt``, ``--fps``), as with ffmpeg's rawvideo demuxer."""

    def __init__(self, path: str, name: str, width: int, height: int, pix_fmt: PixelFormat, fps: Fraction):
        self._per = pix_fmt.frame_bytes(width, height)
        try:
            size = os.path.getsize(path)
            self._fp = open(path, "rb")
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if size == 0 or size % self._per:
            self._fp.close()
            raise InputError(f"{path}: {size} bytes is not a whole number of {width}x{height} {pix_fmt.name} "
                             f"frames ({self._per} bytes each); check --size and --pix-fmt")
        super().__init__(path, VideoInfo(width, height, pix_fmt, fps, size // self._per, name=name))

    def _iter_range(self, batch: int, start: int, stop: int) -> Iterator[Frames]:
        i = self.info
        for a in range(start, stop, batch):
            n = min(batch, stop - a)
            self._fp.seek(a * self._per)
            data = self._fp.read(n * self._per)
            yield Frames.from_bytes(data, i.pix_fmt, i.width, i.height, n)

    def close(self) -> None:
        if not self.closed:
            self._fp.close()
        super().close()


def parse_size(text: str) -> Tuple[int, int]:
    """``WxH`` -> (width, height)."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size must look like WIDTHxHEIGHT (e.g. 176x144), got {text!r}") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ConfigError(f"--size {text} is out of range (1..16384 on a side)")
    return w, h


# --------------------------------------------------------------------------- ffmpeg probing


@dataclass
class ProbeResult:
    """What ffmpeg's report says about the first video stream."""

    codec: str
    pix_fmt: str
    num_frames: Optional[int]
    metadata: Dict[str, str] = field(default_factory=dict)
    duration: Optional[float] = None  # seconds: the stream's own DURATION tag, else the file's

    def count_is_plausible(self, fps: Fraction) -> bool:
        """Does the packet count agree with duration x rate?  If not, the source is probably
        variable-rate and the cfr decode will yield a different number of frames."""
        if self.num_frames is None:
            return False
        if not self.duration:
            return True
        expected = self.duration * float(fps)
        return abs(self.num_frames - expected) <= max(2.0, 0.02 * expected)


_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)\S*?: Video: (.*)$")
_MAP_RE = re.compile(r"^\s*Stream #0:(\d+) -> #0:0\b")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_META_RE = re.compile(r"^\s*([^:]+?)\s*: (.*)$")
_DURATION_RE = re.compile(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)")


def _seconds(text: str) -> Optional[float]:
    m = _DURATION_RE.search(text)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def _split_top_level(text: str) -> List[str]:
    """Split on commas outside parentheses: ``yuv420p(tv, bt709)`` stays one item."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def parse_probe(stderr: str) -> ProbeResult:
    """Extract codec, pixel format, stream tags and the final frame count from ffmpeg's report."""
    lines = stderr.replace("\r", "\n").splitlines()
    mapped: Optional[int] = None
    for line in lines:
        m = _MAP_RE.match(line)
        if m:
            mapped = int(m.group(1))
            break
    codec = pix = ""
    metadata: Dict[str, str] = {}
    in_input = False
    file_duration: Optional[float] = None
    for i, line in enumerate(lines):
        if line.startswith("Input #0"):
            in_input = True
            continue
        if line.startswith(("Output #", "Stream mapping", "Input #1")):
            in_input = False
        if not in_input:
            continue
        if line.lstrip().startswith("Duration:"):
            file_duration = _seconds(line.split(",")[0])
        m = _STREAM_RE.match(line)
        if not m or (mapped is not None and int(m.group(1)) != mapped):
            continue
        if mapped is None and "(attached pic)" in line:
            continue
        items = _split_top_level(m.group(2))
        codec = items[0].split(" ")[0]
        if len(items) > 1:
            pix = items[1].split("(")[0].strip()
        indent = len(line) - len(line.lstrip())
        for sub in lines[i + 1:]:
            if len(sub) - len(sub.lstrip()) <= indent:
                break
            mm = _META_RE.match(sub)
            if mm and mm.group(1) != "Metadata":
                metadata[mm.group(1).strip().upper()] = mm.group(2).strip()
        break
    counts = _FRAME_RE.findall(stderr)
    duration = _seconds(metadata["DURATION"]) if "DURATION" in metadata else file_duration
    return ProbeResult(codec, pix, int(counts[-1]) if counts else None, metadata, duration)


def _input_error(path: str, exc: ToolError, doing: str) -> InputError:
    """Turn an ffmpeg failure on the *input* into a one-line InputError naming ffmpeg's reason."""
    tail = getattr(exc, "stderr", "") or ""
    reason = tail.strip().splitlines()[-1] if tail.strip() else str(exc)
    if "matches no streams" in tail:
        return InputError(f"{path}: contains no video stream")
    if "No such file" in tail:
        return InputError(f"{path}: file not found")
    return InputError(f"{path}: not a video ffmpeg can {doing} ({reason})")


def probe(path: str) -> ProbeResult:
    """One ffmpeg run without decoding: stream description plus the packet count (``-c copy``)."""
    args = build_args(path, "-", streams=["0:V:0"], output_options={"c": "copy", "f": "null"},
                      global_args=["-loglevel", "info", "-stats"])
    try:
        _, stderr = run_ffmpeg(args, what=f"probing {path}", capture_stderr=True)
    except ToolNotFoundError:
        raise
    except ToolError as exc:
        raise _input_error(path, exc, "read") from None
    return parse_probe(stderr)


_DEPTH_RE = re.compile(r"p(\d+)(?:le|be)?$")
_NAMED_DEPTH = {"p010": 10, "p012": 12, "p016": 16, "p210": 10, "p212": 12, "p216": 16, "p410": 10, "p412": 12,
                "p416": 16, "ya16": 16, "y210": 10, "y212": 12, "xv30": 10, "xv36": 12, "v30x": 10, "x2rgb10": 10,
                "x2bgr10": 10, "rgb48": 16, "bgr48": 16, "rgba64": 16, "bgra64": 16, "ayuv64": 16}


def _source_depth(name: str) -> int:
    base = re.sub(r"(le|be)$", "", name)
    if base in _NAMED_DEPTH:
        return _NAMED_DEPTH[base]
    m = _DEPTH_RE.search(name)
    if m and name.startswith(("yuv", "yuva", "gbr", "gray")):
        return int(m.group(1))
    if name.startswith("gray") and re.search(r"\d+", name[4:]):
        return int(re.search(r"\d+", name[4:]).group())  # type: ignore[union-attr]
    return 8


def _source_layout(name: str) -> str:
    """'420', '422', '444', 'gray' or '' (unknown) for an ffmpeg pixel format name."""
    if name.startswith(("gray", "ya8", "ya16", "monow", "monob")):
        return "gray"
    m = re.match(r"yuv[aj]?(4\d\d)", name)
    if m:
        # 4:4:0 and 4:1:1 map to a layout that holds all their samples; 4:1:0 to 4:2:0.
        return {"420": "420", "422": "422", "444": "444", "440": "444", "411": "422", "410": "420"}.get(m.group(1), "")
    if name.startswith(("nv12", "nv21", "p010", "p012", "p016")):
        return "420"
    if name.startswith(("nv16", "p210", "p212", "p216", "y210", "y212", "yuyv422", "uyvy422", "yvyu422")):
        return "422"
    if name.startswith(("nv24", "nv42", "p410", "p412", "p416", "xv3", "v30x", "ayuv", "vuya", "vuyx", "uyva")):
        return "444"
    if re.match(r"(gbr|rgb|bgr|argb|abgr|0rgb|0bgr|x2rgb|x2bgr|pal8)", name):
        return "444"
    return ""


def choose_pix_fmt(source: str) -> PixelFormat:
    """The pixel format to decode a ``source`` (ffmpeg name) into: keep layout and depth where we can.

    Deeper than 10 bits goes to 12 bits; there is no 4:2:2 12-bit format, so such
    sources widen to 4:4:4 rather than lose bits.
    """
    layout = _source_layout(source)
    depth = _source_depth(source)
    if layout == "gray":
        return pixel_format("gray10le" if depth > 8 else "gray")
    if not layout:
        return pixel_format("yuv420p")
    if depth <= 8:
        return pixel_format(f"yuv{layout}p")
    if depth <= 10:
        return pixel_format(f"yuv{layout}p10le")
    return pixel_format("yuv420p12le" if layout == "420" else "yuv444p12le")


# --------------------------------------------------------------------------- ffmpeg reader


class FFmpegVideoReader(VideoReader):
    """Any input ffmpeg decodes, piped as y4m.  Reads are sequential; seeking backwards restarts ffmpeg.

    One decoder process is kept "parked" between calls, so reading a video in
    consecutive chunks (``iter_frames(0, 16)``, ``iter_frames(16, 32)``...) costs a
    single decode; every active iterator owns its own process, so interleaved
    iterators stay correct.
    """

    def __init__(self, path: str, name: str):
        self.source = os.path.basename(path) or path
        self._path = path
        self._parked: Optional[Tuple[FFmpegProcess, int]] = None
        self._header: Optional[y4m.Y4MHeader] = None  # set once the first decoder has started
        result = probe(path)
        if result.codec in _TEXT_CODECS:
            raise InputError(f"{path}: is a text file, not a video")
        if result.num_frames == 0:
            raise InputError(f"{path}: contains no video frames")
        self.probe = result
        self.out_fmt = choose_pix_fmt(result.pix_fmt)
        self.forced_rate = self._tagged_rate(result.metadata.get(FPS_TAG))
        proc, header = self._start()
        try:
            num = result.num_frames
            if num is None or not result.count_is_plausible(header.fps):
                log.info("%s: %s packets for %s s at %s fps; counting frames by decoding", path,
                         num, result.duration, header.fps)
                num = self._count_by_decoding()
                if num == 0:
                    raise InputError(f"{path}: contains no video frames")
        except BaseException:
            proc.kill()
            raise
        self._header = header
        self._parked = (proc, 0)
        super().__init__(path, header.info(num, name))
        log.debug("%s: %s %s -> %s, %d frames at %s fps", path, result.codec, result.pix_fmt, self.out_fmt.name,
                  num, header.fps)

    @staticmethod
    def _tagged_rate(text: Optional[str]) -> Optional[Fraction]:
        if not text:
            return None
        try:
            rate = Fraction(text.strip())
        except (ValueError, ZeroDivisionError):
            return None
        return rate if rate > 0 else None

    def _decode_args(self, output: str, fmt: str, global_args: Sequence[str] = ()) -> List[str]:
        options: Dict[str, object] = {"fps_mode": "cfr", "sws_flags": SWS_FLAGS, "pix_fmt": self.out_fmt.name,
                                      "strict": -1, "f": fmt}
        if self.forced_rate is not None:
            options["r"] = self.forced_rate
        return build_args(self._path, output, streams=["0:V:0"], output_options=options, global_args=global_args)

    def _count_by_decoding(self) -> int:
        """Fallback frame count: decode once with the real settings into the null muxer."""
        args = self._decode_args("-", "null", global_args=["-loglevel", "info", "-stats"])
        try:
            _, stderr = run_ffmpeg(args, what=f"counting frames of {self._path}", capture_stderr=True)
        except ToolNotFoundError:
            raise
        except ToolError as exc:
            raise _input_error(self._path, exc, "decode") from None
        counts = _FRAME_RE.findall(stderr)
        if not counts:
            raise InputError(f"{self._path}: ffmpeg did not report how many frames it decoded")
        return int(counts[-1])

    def _start(self) -> Tuple[FFmpegProcess, y4m.Y4MHeader]:
        """Start a decoder and read its y4m header (a failure before any frame is an input problem)."""
        proc = start_ffmpeg(self._decode_args("pipe:", "yuv4mpegpipe"), what=f"decoding {self._path}", stdout=True)
        try:
            if not proc.stdout.peek(1):  # ffmpeg wrote nothing: let its exit status explain why
                self._finish(proc)
                raise InputError(f"{self._path}: contains no video frames that ffmpeg can decode")
            header = y4m.read_header(proc.stdout, f"{self.source} (via ffmpeg)")  # type: ignore[arg-type]
            expected = self._header
            if expected is not None and (header.width, header.height, header.fps, header.pix_fmt) != (
                    expected.width, expected.height, expected.fps, expected.pix_fmt):
                raise InputError(f"{self._path}: the video changed while it was being read")
        except BaseException:
            proc.kill()
            raise
        return proc, header

    def _take(self, start: int) -> Tuple[FFmpegProcess, int]:
        """A decoder positioned at or before ``start``: the parked one if usable, else a fresh one."""
        if self._parked is not None:
            proc, pos = self._parked
            self._parked = None
            if pos <= start:
                return proc, pos
            proc.kill()
        proc, _ = self._start()
        return proc, 0

    def _park(self, proc: FFmpegProcess, pos: int) -> None:
        if self.closed:
            proc.kill()
            return
        if self._parked is not None:
            self._parked[0].kill()
        self._parked = (proc, pos)

    def _iter_range(self, batch: int, start: int, stop: int) -> Iterator[Frames]:
        proc, pos = self._take(start)
        assert self._header is not None
        src = f"{self.source} (via ffmpeg)"
        last: Optional[Frames] = None  # newest frame seen, in case the stream ends early and needs padding
        eof = False
        try:
            while pos < start:
                skipped = y4m.read_frames(proc.stdout, self._header, min(batch, start - pos), pos, src)
                if skipped is None:
                    eof = True
                    break
                pos += skipped.num_frames
                last = skipped[skipped.num_frames - 1:]
            while pos < stop and not eof:
                frames = y4m.read_frames(proc.stdout, self._header, min(batch, stop - pos), pos, src)
                if frames is None:
                    eof = True
                    break
                pos += frames.num_frames
                last = frames[frames.num_frames - 1:]
                yield frames
        except GeneratorExit:
            self._park(proc, pos)  # the consumer stopped early; pos is exact, so the decoder is reusable
            raise
        except BaseException:
            proc.kill()
            raise
        if not eof:
            self._park(proc, pos)
            return
        self._finish(proc)
        yield from self._pad(last, max(pos, start), stop, batch)

    def _finish(self, proc: FFmpegProcess) -> None:
        try:
            proc.finish()
        except ToolNotFoundError:
            raise
        except ToolError as exc:
            raise _input_error(self._path, exc, "decode") from None

    def _pad(self, last: Optional[Frames], pos: int, stop: int, batch: int) -> Iterator[Frames]:
        """ffmpeg delivered fewer frames than counted: repeat the last one (as cfr itself would)."""
        if last is None:
            raise InputError(f"{self._path}: ffmpeg decoded no frames although {self.info.num_frames} were counted")
        log.warning("%s: ffmpeg decoded fewer frames than the %d counted; repeating the last frame from %d on",
                    self._path, self.info.num_frames, pos)
        while pos < stop:
            n = min(batch, stop - pos)
            yield Frames(tuple(np.repeat(p, n, axis=0) for p in last.planes), last.pix_fmt)
            pos += n

    def close(self) -> None:
        if self._parked is not None:
            self._parked[0].kill()
            self._parked = None
        super().close()

    def __del__(self) -> None:
        # Safety net for readers never closed: do not leave an ffmpeg blocked on a pipe.
        try:
            if self._parked is not None:
                self._parked[0].kill()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


# --------------------------------------------------------------------------- entry point


def _name_of(path: str) -> str:
    p = Path(path)
    if "%" in p.name:  # an image-sequence pattern: the folder names the video
        return p.parent.name or p.stem
    return p.stem


def open_video(path: "str | os.PathLike[str]", fps: "Optional[Union[Fraction, int, float, str]]" = None,
               raw: Optional[Tuple[int, int, str]] = None) -> VideoReader:
    """Open any video for streaming reads: our parser for y4m (by content), imageio + ffmpeg for a
    PNG sequence (a folder of PNGs or a pattern like ``frames/%05d.png``), ffmpeg for the rest.

    ``fps`` (e.g. ``25``, ``"30000/1001"``) is the frame rate of a PNG sequence or a raw ``.yuv``
    file, which do not store it (default 25, as ffmpeg's image2 and rawvideo).  ``raw`` =
    (width, height, pixel format) describes a raw ``.yuv`` file's frames.  Any other input has its own rate,
    so giving ``fps`` for it is a :class:`ConfigError` rather than a silent retiming.

    Missing, empty or undecodable inputs and inputs without frames raise a one-line
    :class:`InputError`.
    """
    from .png import PNGSequenceReader, is_png_sequence, parse_fps, sequence_name

    path = os.fspath(path)
    rate = None if fps is None else parse_fps(fps)
    if path.lower().endswith(RAW_EXTENSIONS) or raw is not None:
        if raw is None:
            raise InputError(f"{path}: a raw .yuv file has no header: give --size WxH and --pix-fmt (e.g. "
                             f"yuv420p), and --fps if it is not 25")
        if not os.path.isfile(path):
            raise InputError(f"{path}: file not found")
        return RawVideoReader(path, _name_of(path), raw[0], raw[1], pixel_format(raw[2]), rate or Fraction(25))
    if is_png_sequence(path):
        return PNGSequenceReader(path, sequence_name(path), rate)
    if rate is not None:
        raise ConfigError(f"{path}: --fps applies only to PNG-sequence inputs (a folder or a pattern like "
                          f"frames/%05d.png); this input has its own frame rate")
    name = _name_of(path)
    is_pattern = "%" in os.path.basename(path)
    if not os.path.exists(path):
        if not is_pattern:
            raise InputError(f"{path}: file not found")
    elif not os.path.isfile(path):
        raise InputError(f"{path}: is not a regular file")
    else:
        try:
            with open(path, "rb") as fp:
                magic = fp.read(len(y4m.Y4M_MAGIC))
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if not magic:
            raise InputError(f"{path}: file is empty")
        if magic == y4m.Y4M_MAGIC or path.lower().endswith(".y4m"):
            return Y4MVideoReader(path, name)
    return FFmpegVideoReader(path, name)
