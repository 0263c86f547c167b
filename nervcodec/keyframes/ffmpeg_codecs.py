"""Keyframe codecs that run an intra encoder of the bundled ffmpeg.

Each keyframe is coded as its own still picture in a raw elementary stream
with the least container overhead ffmpeg offers:

========  =================  ==========================  ======================
name      encoder            stream (``-f``)             decoder
========  =================  ==========================  ======================
hevc      libx265            Annex-B ``hevc``            ffmpeg ``hevc``
vvc       libvvenc           Annex-B ``vvc``             ffmpeg ``vvc`` (native)
av1       libaom-av1         low-overhead OBUs ``obu``   ``libdav1d``
jxl       libjxl             bare codestream             ``libjxl``
========  =================  ==========================  ======================

Why these choices:

* Every blob is self-contained (its own parameter sets / sequence header), so
  one keyframe decodes without the others.  The repeated headers are shared
  by :func:`~nervcodec.keyframes.base.pack_blobs` in the file.
* Frames are coded in their native pixel format when the encoder takes it.
  libvvenc takes only ``yuv420p10le``: 8-bit 4:2:0 is coded as Main10 with
  samples shifted left by 2 (and shifted back with rounding), gray as 4:2:0
  with flat mid-grey chroma.  libjxl takes gray and RGB only; YUV frames are
  coded as one grey codestream per plane (no colour conversion, so the YUV
  values are what the quality targets).  Formats an encoder cannot take
  without losing information make :meth:`supports` return False.
* Sizes an encoder refuses are padded by edge replication and cropped back
  exactly after decoding (see each class's ``_coded_size``).
* Encoders are tuned for PSNR (no psycho-visual tricks): the D-NeRV network
  is fitted with pixel losses against these decoded frames.
* Refused sizes and options make ffmpeg fail (a :class:`ToolError` with its
  stderr); an empty output without a failure is treated the same way.
* Command lines are compiled by :func:`~nervcodec.tools.ffmpeg.build_args`
  (ffmpeg-python) from option mappings; encoder settings are the mapping
  returned by each class's ``_encoder_options``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np

from ..errors import ConfigError, FormatError, InputError, ToolError
from ..io.video import Frames, PixelFormat, pixel_format
from ..tools.ffmpeg import build_args, run_ffmpeg
from .base import (KeyframeCodec, ParamValue, PixFmtLike, as_pixel_format, crop_frames, join_streams, pad_frames,
                   split_streams)

__all__ = ["FFmpegIntraCodec", "HevcCodec", "VvcCodec", "VvcInterCodec", "Av1Codec", "JxlCodec",
           "ffmpeg_has_encoder", "ffmpeg_has_decoder", "split_access_units"]

T = TypeVar("T")
R = TypeVar("R")


@lru_cache(maxsize=None)
def _ffmpeg_list(kind: str) -> frozenset:
    """Names printed by ``ffmpeg -encoders`` / ``-decoders`` (cached: the binary does not change)."""
    out = run_ffmpeg([f"-{kind}"], what=f"listing {kind}", capture_stdout=True).decode("utf-8", "replace")
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # rows look like " V....D libx265   libx265 H.265 / HEVC (codec hevc)"
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def ffmpeg_has_encoder(name: str) -> bool:
    """Whether the ffmpeg in use was built with encoder ``name``."""
    return name in _ffmpeg_list("encoders")


def ffmpeg_has_decoder(name: str) -> bool:
    """Whether the ffmpeg in use was built with decoder ``name``."""
    return name in _ffmpeg_list("decoders")


def _parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> List[R]:
    """Run independent ffmpeg calls on a few threads (each call is its own process).

    Small keyframes keep an encoder on one core, so two processes at once
    nearly halve the wall time of a batch; results keep the input order.
    """
    workers = min(len(items), os.cpu_count() or 1, 4)
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def _check_choice(what: str, value: T, choices: Tuple[T, ...]) -> T:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# --------------------------------------------------------------------------- sample conversions


def _shift_up(plane: np.ndarray, bits: int) -> np.ndarray:
    """Video-style bit-depth increase (value << bits), as 8-bit content sits in a 10-bit codec."""
    return plane.astype(np.uint16) << bits


def _shift_down(plane: np.ndarray, bits: int, max_value: int, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`_shift_up` with rounding to nearest."""
    out = (plane.astype(np.uint32) + (1 << (bits - 1))) >> bits
    return np.minimum(out, max_value).astype(dtype)


class FFmpegIntraCodec(KeyframeCodec):
    """Shared machinery: format/size adaptation, one ffmpeg run per frame, decoding, cropping.

    Subclasses say which encoder and streams to use (class attributes), which
    pixel format is handed to the encoder for a given input format
    (:meth:`_coded_format`), what size the encoder needs (:meth:`_coded_size`)
    and the encoder options for a quality (:meth:`_encoder_options`).
    """

    encoder: str = ""
    decoders: Tuple[str, ...] = ()  # first one available is used
    muxer: str = ""
    demuxer: str = ""
    #: Raw Annex-B streams may be concatenated, so all blobs decode in one ffmpeg run.
    concat_decode: bool = False
    lo_quality: int = 0
    hi_quality: int = 51
    #: How many times an encode that fails may be retried at twice the padded height.  Only for
    #: Annex-B streams (they start with a zero byte), where a first byte 1..max_extra marks it.
    max_extra: int = 0

    @property
    def quality_range(self) -> Tuple[int, int]:
        return (self.lo_quality, self.hi_quality)

    # -- subclass hooks -------------------------------------------------------------
    def _coded_format(self, fmt: PixelFormat) -> Optional[PixelFormat]:
        """Format handed to the encoder for frames in ``fmt``; None if unsupported."""
        raise NotImplementedError

    def _coded_size(self, width: int, height: int, fmt: PixelFormat) -> Tuple[int, int]:
        """Padded size the encoder accepts (default: whole chroma samples)."""
        return (_round_up(width, 1 << fmt.log2_chroma_w), _round_up(height, 1 << fmt.log2_chroma_h))

    def _encoder_options(self, quality: int, coded: PixelFormat) -> Dict[str, object]:
        """Output options of the encoder for ``quality``, e.g. ``{"c:v": "libx265", "preset": "slow"}``."""
        raise NotImplementedError

    # -- availability -------------------------------------------------------------------
    def available(self) -> bool:
        """Whether the bundled ffmpeg has this codec's encoder and a decoder for it."""
        return ffmpeg_has_encoder(self.encoder) and self._decoder() is not None

    def _decoder(self) -> Optional[str]:
        for name in self.decoders:
            if ffmpeg_has_decoder(name):
                return name
        return None

    def supports(self, pix_fmt: PixFmtLike) -> bool:
        try:
            fmt = as_pixel_format(pix_fmt)
        except InputError:
            return False
        return self._coded_format(fmt) is not None

    # -- conversions between the caller's format and the coded one ----------------------
    def _to_coded(self, frames: Frames, coded: PixelFormat) -> Frames:
        fmt = frames.pix_fmt
        if fmt == coded:
            return frames
        shift = coded.bit_depth - fmt.bit_depth
        planes = [(_shift_up(p, shift) if shift else p) for p in frames.planes]
        if not fmt.has_chroma and coded.has_chroma:
            n = frames.num_frames
            _, (ch, cw), _ = coded.plane_shapes(frames.width, frames.height)
            grey = np.full((n, ch, cw), 1 << (coded.bit_depth - 1), coded.dtype)
            planes = [planes[0], grey, grey.copy()]
        return Frames(tuple(p.astype(coded.dtype, copy=False) for p in planes), coded)

    def _from_coded(self, frames: Frames, fmt: PixelFormat) -> Frames:
        coded = frames.pix_fmt
        if fmt == coded:
            return frames
        planes = frames.planes[: fmt.num_planes]
        shift = coded.bit_depth - fmt.bit_depth
        if shift:
            planes = tuple(_shift_down(p, shift, fmt.max_value, fmt.dtype) for p in planes)
        return Frames(tuple(planes), fmt)

    # -- encode ---------------------------------------------------------------------------
    def encode(self, frames: Frames, quality: int) -> List[bytes]:
        quality = self.check_quality(quality)
        fmt = self.check_format(frames.pix_fmt)
        coded = self._coded_format(fmt)
        assert coded is not None
        ready = self._to_coded(frames, coded)
        return _parallel_map(lambda i: self._encode_frame(ready[i], fmt, quality), list(range(ready.num_frames)))

    def _encode_frame(self, frame: Frames, fmt: PixelFormat, quality: int) -> bytes:
        """Code one frame; on failure retry taller (see :attr:`max_extra`), marking the blob."""
        extra, out = self._encode_padded(frame, fmt, quality)
        return (bytes([extra]) + out) if extra else out

    def _encode_padded(self, frames: Frames, fmt: PixelFormat, quality: int) -> Tuple[int, bytes]:
        """``frames`` (in the coded format) as one ffmpeg output, padded to the coded size; when the
        encoder fails, padded to 2^k times the height for k = 1 .. :attr:`max_extra`.  Returns (k, bytes)."""
        n = frames.num_frames
        for extra in range(self.max_extra + 1):
            width, height = self._coded_size(frames.width, frames.height, fmt)
            height <<= extra
            padded = pad_frames(frames, width, height)
            raw = b"".join(padded.to_bytes(i) for i in range(n))
            try:
                return extra, self._encode_one(raw, frames.pix_fmt, width, height, quality, n)
            except ToolError:
                if extra == self.max_extra:
                    raise
        raise AssertionError("unreachable")

    def _encode_one(self, raw: bytes, coded: PixelFormat, width: int, height: int, quality: int,
                    count: int = 1) -> bytes:
        args = build_args("-", "-", input_options={"f": "rawvideo", "pix_fmt": coded.name, "s": f"{width}x{height}",
                                                   "r": 25},
                          output_options={"frames:v": count, **self._encoder_options(quality, coded), "f": self.muxer})
        what = f"encoding {count} keyframe{'s' if count > 1 else ''} with {self.encoder}"
        out = run_ffmpeg(args, what=what, input=raw, capture_stdout=True)
        if not out:
            raise ToolError(f"{self.encoder} wrote nothing for a {width}x{height} {coded.name} keyframe")
        return out

    # -- decode ---------------------------------------------------------------------------
    def decode(self, blobs: Sequence[bytes], pix_fmt: PixFmtLike, width: int, height: int,
               params: Optional[Mapping[str, ParamValue]] = None) -> Frames:
        fmt = self.check_format(pix_fmt)
        coded = self._coded_format(fmt)
        assert coded is not None
        if not blobs:
            return Frames.empty(fmt, width, height, 0)
        cw, ch = self._coded_size(width, height, fmt)
        # blobs coded taller (first byte 1..max_extra, see _encode_frame) decode in their own groups
        groups: Dict[int, List[Tuple[int, bytes]]] = {}
        for i, blob in enumerate(blobs):
            extra = blob[0] if self.max_extra and blob and 1 <= blob[0] <= self.max_extra else 0
            groups.setdefault(extra, []).append((i, bytes(blob[1:]) if extra else bytes(blob)))
        out: List[Optional[Frames]] = [None] * len(blobs)
        for extra, members in groups.items():
            h = ch << extra
            if self.concat_decode:
                dec = self._decode_raw(b"".join(b for _, b in members), coded, cw, h, len(members))
                parts = [dec[k] for k in range(len(members))]
            else:
                parts = _parallel_map(lambda b: self._decode_raw(b, coded, cw, h, 1), [b for _, b in members])
            for (i, _), part in zip(members, parts):
                out[i] = crop_frames(part, width, height)
        return self._from_coded(Frames.concat([f for f in out if f is not None]), fmt)

    def _decode_raw(self, stream: bytes, coded: PixelFormat, width: int, height: int, count: int) -> Frames:
        decoder = self._decoder()
        if decoder is None:
            raise ToolError(f"the ffmpeg in use has no decoder for {self.name} ({', '.join(self.decoders)})")
        args = build_args("-", "-", input_options={"c:v": decoder, "f": self.demuxer},
                          output_options={"fps_mode": "passthrough", "f": "rawvideo", "pix_fmt": coded.name})
        out = run_ffmpeg(args, what=f"decoding {self.name} keyframes", input=stream, capture_stdout=True)
        try:
            return Frames.from_bytes(out, coded, width, height, count)
        except InputError:
            raise FormatError(f"{self.name} keyframe data decoded to {len(out)} bytes, expected {count} "
                              f"frame(s) of {width}x{height} {coded.name}: damaged or wrong size") from None


#: Chroma QP offset of the HEVC and VVC keyframe encoders.  Keyframes feed a model judged on RGB
#: error, where chroma counts as much as luma although it has a quarter of the samples.  Measured on
#: the 7 keyframes of people_qcif_48f with VVC (bytes -> PSNR of the RGB-weighted YUV error):
#: offset 0: 22349 B -> 41.52 dB, 26383 B -> 42.58 dB; offset -6: 21585 B -> 41.95 dB, 26150 B -> 43.20 dB.
CHROMA_QP_OFFSET = -6


class HevcCodec(FFmpegIntraCodec):
    """HEVC all-intra with libx265 at constant QP (quality = 51 - QP).

    x265's banner SEI (``info=0``) is off: it is about 2 kB of option text per
    picture.  ``-tune psnr`` turns off psycho-visual RD and adaptive
    quantisation.  x265 refuses pictures narrower or shorter than 16, so tiny
    frames are padded to 16; otherwise only to whole chroma samples (x265
    itself signals a conformance window for the rest).  All YUV formats of
    nervcodec and gray are coded natively (Main, Main10, Main12, RExt 4:2:2 /
    4:4:4, monochrome).  Preset ``slow``: ``medium`` costs about 3% more
    bytes, ``veryslow`` saves under 1% for 1.2-1.5x the time.
    """

    name = "hevc"
    codec_id = 1
    encoder = "libx265"
    decoders = ("hevc",)
    muxer = demuxer = "hevc"
    concat_decode = True
    lo_quality, hi_quality = 0, 51

    PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
               "placebo")

    def __init__(self, preset: str = "slow") -> None:
        self.preset = _check_choice("hevc preset", preset, self.PRESETS)

    def _coded_format(self, fmt: PixelFormat) -> Optional[PixelFormat]:
        return fmt  # every PIXEL_FORMATS entry is an x265 input format

    def _coded_size(self, width: int, height: int, fmt: PixelFormat) -> Tuple[int, int]:
        w, h = super()._coded_size(width, height, fmt)
        return max(w, 16), max(h, 16)

    def _encoder_options(self, quality: int, coded: PixelFormat) -> Dict[str, object]:
        qp = 51 - quality
        return {"c:v": "libx265", "preset": self.preset, "tune": "psnr",
                "x265-params": f"qp={qp}:info=0:log-level=error:keyint=1:aud=0:hash=0"
                               f":cbqpoffs={CHROMA_QP_OFFSET}:crqpoffs={CHROMA_QP_OFFSET}"}


class VvcCodec(FFmpegIntraCodec):
    """VVC intra with libvvenc at constant QP (quality = 63 - QP), decoded by ffmpeg's native decoder.

    libvvenc takes only ``yuv420p10le``: ``yuv420p`` is coded in Main10 with
    samples << 2, gray with flat chroma.  Its perceptual QP adaptation
    (``-qpa``) is off.  vvenc fails on small or unaligned sizes (below 32 in a
    dimension, or some sizes that are not multiples of 8), so frames are padded
    to multiples of 8 and at least 32x32.

    ffmpeg's libvvenc wrapper gives each access unit a buffer of width x height
    bytes, so near-lossless pictures (fine texture or noise at low QP: pure
    10-bit noise needs about 2.6 bytes per pixel) fail to encode.  Such a
    frame is retried padded to 2x, 4x, 8x its height (edge rows cost almost
    nothing) and its blob gets one leading byte k = 1..3 (an Annex-B stream
    always starts with 0x00); the decoder decodes it at that height and crops.

    The default preset ``fast`` saved 11-17% bytes against x265 ``slow`` at
    equal PSNR-YUV on the dev clips for about 5x its encode time; ``medium``
    saves 3-5% more for another 3-6x, ``faster`` loses most of the gain
    (docs/keyframes.md).
    """

    name = "vvc"
    codec_id = 2
    encoder = "libvvenc"
    decoders = ("vvc",)
    muxer = demuxer = "vvc"
    concat_decode = True
    lo_quality, hi_quality = 0, 63
    max_extra = 3

    PRESETS = ("faster", "fast", "medium", "slow", "slower")

    def __init__(self, preset: str = "fast") -> None:
        self.preset = _check_choice("vvc preset", preset, self.PRESETS)

    def _coded_format(self, fmt: PixelFormat) -> Optional[PixelFormat]:
        if fmt.name in ("yuv420p", "yuv420p10le", "gray", "gray10le"):
            return pixel_format("yuv420p10le")
        return None

    def _coded_size(self, width: int, height: int, fmt: PixelFormat) -> Tuple[int, int]:
        return max(_round_up(width, 8), 32), max(_round_up(height, 8), 32)

    def _encoder_options(self, quality: int, coded: PixelFormat) -> Dict[str, object]:
        # Chroma QP offset -6: nervcodec is judged by RGB error, to which the (quarter-size) chroma
        # planes contribute about 60%; on people_qcif_48f keyframes this gives +0.6 dB of RGB-weighted
        # PSNR at equal bytes (see CHROMA_QP_OFFSET).
        return {"c:v": "libvvenc", "preset": self.preset, "qp": 63 - quality, "qpa": 0,
                "vvenc-params": f"CbQpOffset={CHROMA_QP_OFFSET}:CrQpOffset={CHROMA_QP_OFFSET}"}


#: VVC NAL unit type of an access unit delimiter (ITU-T H.266, table 5).
VVC_AUD_NUT = 20


def split_access_units(stream: bytes) -> List[bytes]:
    """An Annex-B VVC stream whose access units each start with a delimiter (AUD), cut before each
    delimiter's start code (with its leading zero byte when it has four).  Emulation prevention keeps
    ``00 00 01`` out of NAL payloads, so a start code followed by an AUD header is a boundary."""
    cuts = []
    at = stream.find(b"\x00\x00\x01")
    while at >= 0:
        if at + 4 < len(stream) and stream[at + 4] >> 3 == VVC_AUD_NUT:
            cuts.append(at - 1 if at and stream[at - 1] == 0 else at)
        at = stream.find(b"\x00\x00\x01", at + 3)
    if not cuts or cuts[0] != 0:
        raise FormatError("a VVC stream that does not start with an access unit delimiter")
    return [stream[a:b] for a, b in zip(cuts, cuts[1:] + [len(stream)])]


class VvcInterCodec(VvcCodec):
    """VVC with inter prediction between the keyframes: one libvvenc stream per video in vvenc's
    random-access configuration (hierarchical B pictures, an intra picture about every second of
    the keyframes' own sequence, played at 25 per second), at constant QP (quality = 63 - QP).

    Consecutive keyframes of a clip are 8 frames apart and mostly show the same scene, so predicting
    one from another costs far fewer bytes than coding each alone: on the dev clips' keyframes (every
    8th frame) vvenc's random-access stream needs 47-61 % fewer bytes than the intra pictures at the
    same PSNR-YUV (BD-rate; about a third of the bytes at 35 dB on the QCIF clips, docs/keyframes.md).  The price is random access: the blobs are the stream's access units
    in decoding order (each starts with a delimiter, so they split exactly), and a video's keyframes
    decode together, in one ffmpeg run; a decoder that needs one keyframe decodes that video's whole
    keyframe stream (an eighth or a quarter of its frames, as still pictures cost).

    As with :class:`VvcCodec`, a stream whose access units overflow ffmpeg's buffer (noise at low
    QP) is coded again with every picture padded to 2x, 4x, 8x its height, and each of its blobs
    then starts with that k = 1..3.  Decoding is :class:`FFmpegIntraCodec`'s: blobs of one height
    are concatenated and decoded in one run, which for a stream is the whole video's keyframes.
    """

    name = "vvc-ra"
    codec_id = 5
    independent = False

    def encode(self, frames: Frames, quality: int) -> List[bytes]:
        quality = self.check_quality(quality)
        fmt = self.check_format(frames.pix_fmt)
        coded = self._coded_format(fmt)
        assert coded is not None
        if frames.num_frames == 0:
            return []
        extra, stream = self._encode_padded(self._to_coded(frames, coded), fmt, quality)
        units = split_access_units(stream)
        if len(units) != frames.num_frames:
            raise ToolError(f"{self.encoder} wrote {len(units)} access units for {frames.num_frames} keyframes")
        return [bytes([extra]) + u for u in units] if extra else units

    def _encoder_options(self, quality: int, coded: PixelFormat) -> Dict[str, object]:
        opts = super()._encoder_options(quality, coded)
        return {**opts, "vvenc-params": f"{opts['vvenc-params']}:AccessUnitDelimiter=1"}


class Av1Codec(FFmpegIntraCodec):
    """AV1 still pictures with libaom (``-usage allintra -still-picture 1``), quality = 63 - CRF.

    The still-picture mode writes the reduced sequence header (a few bytes),
    which suits one-frame streams.  libaom takes every nervcodec format
    (4:2:0/4:2:2/4:4:4, 8/10/12-bit, monochrome) and any size >= 2 (padded
    to whole chroma samples).  Decoded with dav1d (libaom's decoder as a
    fallback); both are bit-exact AV1 decoders.  ``cpu_used`` 4 was 1-5%
    smaller than x265 ``slow`` on the dev clips at 2-3x its time; 6 was 7-9%
    larger.
    """

    name = "av1"
    codec_id = 3
    encoder = "libaom-av1"
    decoders = ("libdav1d", "libaom-av1")
    muxer = demuxer = "obu"
    lo_quality, hi_quality = 0, 63

    def __init__(self, cpu_used: int = 4) -> None:
        self.cpu_used = _check_choice("av1 cpu_used", cpu_used, tuple(range(0, 10)))

    def _coded_format(self, fmt: PixelFormat) -> Optional[PixelFormat]:
        return fmt

    def _encoder_options(self, quality: int, coded: PixelFormat) -> Dict[str, object]:
        return {"c:v": "libaom-av1", "usage": "allintra", "still-picture": 1, "cpu-used": self.cpu_used,
                "crf": 63 - quality, "tune": "psnr", "threads": 1}


class JxlCodec(FFmpegIntraCodec):
    """JPEG XL (libjxl) bare codestreams; quality q maps to Butteraugli distance 15 * 2**(-q/8).

    libjxl takes RGB or gray only.  Rather than convert YUV to RGB and back
    (lossy, and chroma would be coded at 4:4:4), each plane is coded as its
    own grey image; a frame's blob is ``len(Y) Y len(U) U V`` (LEB128
    lengths).  On a QCIF frame this was about as good as the RGB route
    (2.5 kB luma at 35.5 dB vs 3.1 kB at 36.1 dB PSNR-YUV for RGB) and avoids
    the conversion.  libjxl's default XYB stays on: ``-xyb 0`` doubled the
    size at equal PSNR.  10-bit planes are scaled to 16 bits
    (``v * 65535 / 1023``) and back.  libjxl decodes in floating point and
    the JPEG XL conformance rules allow small differences between
    implementations and CPUs, so another machine may decode a sample one code
    value off (the other codecs here are bit-exact by specification).  It was
    50-95% larger than HEVC at equal PSNR-YUV on the dev clips.
    """

    name = "jxl"
    codec_id = 4
    encoder = "libjxl"
    decoders = ("libjxl",)
    muxer = "image2pipe"
    demuxer = "jpegxl_pipe"
    lo_quality, hi_quality = 0, 64

    def __init__(self, effort: int = 7) -> None:
        self.effort = _check_choice("jxl effort", effort, tuple(range(1, 10)))

    @staticmethod
    def distance(quality: int) -> float:
        """Butteraugli distance for an integer quality: 15 at 0, halving every 8 steps."""
        return 15.0 * 2.0 ** (-quality / 8.0)

    def _coded_format(self, fmt: PixelFormat) -> Optional[PixelFormat]:
        return fmt if fmt.bit_depth <= 16 else None

    def _coded_size(self, width: int, height: int, fmt: PixelFormat) -> Tuple[int, int]:
        return width, height

    def _encoder_options(self, quality: int, coded: PixelFormat) -> Dict[str, object]:
        return {"c:v": "libjxl", "distance": f"{self.distance(quality):.6f}", "effort": self.effort}

    @staticmethod
    def _grey_format(fmt: PixelFormat) -> str:
        return "gray" if fmt.bit_depth <= 8 else "gray16le"

    @staticmethod
    def _to_grey(plane: np.ndarray, fmt: PixelFormat) -> np.ndarray:
        if fmt.bit_depth <= 8:
            return plane
        return ((plane.astype(np.uint32) * 65535 + fmt.max_value // 2) // fmt.max_value).astype("<u2")

    @staticmethod
    def _from_grey(plane: np.ndarray, fmt: PixelFormat) -> np.ndarray:
        if fmt.bit_depth <= 8:
            return plane.astype(np.uint8, copy=False)
        return ((plane.astype(np.uint32) * fmt.max_value + 32767) // 65535).astype(fmt.dtype)

    def encode(self, frames: Frames, quality: int) -> List[bytes]:
        quality = self.check_quality(quality)
        fmt = self.check_format(frames.pix_fmt)
        grey = self._grey_format(fmt)
        jobs = []
        for i in range(frames.num_frames):
            for p in frames.planes:
                plane = np.ascontiguousarray(self._to_grey(p[i], fmt))
                jobs.append((plane.tobytes(), plane.shape[1], plane.shape[0]))

        def one(job: Tuple[bytes, int, int]) -> bytes:
            raw, w, h = job
            args = build_args("-", "-", input_options={"f": "rawvideo", "pix_fmt": grey, "s": f"{w}x{h}"},
                              output_options={"frames:v": 1, **self._encoder_options(quality, fmt), "f": self.muxer})
            out = run_ffmpeg(args, what="encoding a keyframe with libjxl", input=raw, capture_stdout=True)
            if not out:
                raise ToolError(f"libjxl wrote nothing for a {w}x{h} plane")
            return out

        streams = _parallel_map(one, jobs)
        k = fmt.num_planes
        return [join_streams(streams[i * k:(i + 1) * k]) for i in range(frames.num_frames)]

    def decode(self, blobs: Sequence[bytes], pix_fmt: PixFmtLike, width: int, height: int,
               params: Optional[Mapping[str, ParamValue]] = None) -> Frames:
        fmt = self.check_format(pix_fmt)
        shapes = fmt.plane_shapes(width, height)
        grey = self._grey_format(fmt)
        jobs = []
        for blob in blobs:
            streams = split_streams(blob, len(shapes), "jxl keyframe")
            if not all(streams):
                raise FormatError("jxl keyframe is truncated or damaged (an empty plane)")
            jobs.extend(zip(streams, shapes))
        decoder = self._decoder()
        if decoder is None:
            raise ToolError("the ffmpeg in use has no libjxl decoder")

        def one(job: Tuple[bytes, Tuple[int, int]]) -> np.ndarray:
            stream, (h, w) = job
            args = build_args("-", "-", input_options={"c:v": decoder, "f": self.demuxer},
                              output_options={"frames:v": 1, "f": "rawvideo", "pix_fmt": grey})
            out = run_ffmpeg(args, what="decoding jxl keyframes", input=stream, capture_stdout=True)
            dtype = np.dtype(np.uint8) if grey == "gray" else np.dtype("<u2")
            if len(out) != h * w * dtype.itemsize:
                raise FormatError(f"jxl keyframe plane decoded to {len(out)} bytes, expected {w}x{h}")
            return self._from_grey(np.frombuffer(out, dtype).reshape(h, w), fmt)

        planes_flat = _parallel_map(one, jobs)
        k = len(shapes)
        if not blobs:
            return Frames.empty(fmt, width, height, 0)
        planes = tuple(np.stack([planes_flat[i * k + j] for i in range(len(blobs))]) for j in range(k))
        return Frames(planes, fmt)
