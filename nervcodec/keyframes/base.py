"""The keyframe codec interface and the helpers every implementation shares.

D-NeRV conditions each clip of 8 frames on two *decoded* keyframes (the clip's
first frame and the next clip's first frame).  Those keyframes are stored in
the .nerv file by a conventional intra codec (ffmpeg: HEVC, VVC, AV1, JPEG XL)
or a learned image codec (compressai).  This module fixes what all of them
must offer, so that the encoder, the fitting code and the decoder never care
which one is in use:

* one independent blob per frame, so that decoding a clip needs only its own
  two keyframes (random access);
* integer qualities where *higher means better and bigger*, monotone enough
  for :func:`search_quality`'s bracketing search;
* ``params(quality)``: the few str -> int/str facts the decoder needs
  (written in the file next to ``codec_id``);
* decoding that is the exact inverse in shape and pixel format.

How the blobs are stored in the file (their common prefix once) is the
container's business: :mod:`nervcodec.container.keyframes`.
"""
from __future__ import annotations

import abc
import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from ..bytesio import Reader, Writer
from ..container.keyframes import packed_size
from ..errors import ConfigError
from ..io.video import Frames, PixelFormat, pixel_format

__all__ = [
    "ParamValue",
    "KeyframeCodec",
    "as_pixel_format",
    "pad_frames",
    "crop_frames",
    "choose_quality",
    "search_quality",
    "join_streams",
    "split_streams",
]

ParamValue = Union[int, str]
PixFmtLike = Union[PixelFormat, str]
T = TypeVar("T")


def as_pixel_format(pix_fmt: PixFmtLike) -> PixelFormat:
    """Accept a :class:`PixelFormat` or its ffmpeg name."""
    return pix_fmt if isinstance(pix_fmt, PixelFormat) else pixel_format(pix_fmt)


class KeyframeCodec(abc.ABC):
    """An intra image codec that stores D-NeRV keyframes in a .nerv file.

    Subclasses set the class attributes and implement :meth:`encode`,
    :meth:`decode`, :meth:`supports` and :attr:`quality_range`.
    """

    #: Stable short name used on the command line and in reports.
    name: str = ""
    #: Stable uint8 written in .nerv files.  Never renumber a released codec.
    codec_id: int = 0
    #: False when the bitstream is known to mis-decode on another CPU/GPU/platform
    #: (compressai hyperprior and autoregressive models: the entropy parameters are
    #: recomputed with floating point at the decoder).  The encoder should warn.
    portable: bool = True
    #: True when decoding needs a weights file the user must supply again.
    requires_weights: bool = False
    #: True when every blob decodes on its own (intra coding).  False for a codec that predicts
    #: keyframes from each other (``vvc-ra``): its blobs are the access units of one stream per
    #: video, in decoding order, and :meth:`decode` takes all of a video's blobs at once.
    independent: bool = True

    @property
    @abc.abstractmethod
    def quality_range(self) -> Tuple[int, int]:
        """Inclusive (lowest, highest) quality; higher = better and more bytes."""

    @abc.abstractmethod
    def supports(self, pix_fmt: PixFmtLike) -> bool:
        """Whether frames of this pixel format can be coded (and decoded back in it)."""

    @abc.abstractmethod
    def encode(self, frames: Frames, quality: int) -> List[bytes]:
        """Code the frames; return one blob per frame: self-contained ones when :attr:`independent`,
        else the access units of one stream in decoding order."""

    @abc.abstractmethod
    def decode(self, blobs: Sequence[bytes], pix_fmt: PixFmtLike, width: int, height: int,
               params: Optional[Mapping[str, ParamValue]] = None) -> Frames:
        """Decode blobs made by :meth:`encode` back to frames of ``pix_fmt`` and size ``width``x``height``.

        ``params`` is what :meth:`params` returned at encoding time (read back
        from the file).  Codecs that need nothing from it accept ``None``.
        """

    def params(self, quality: int) -> Dict[str, ParamValue]:
        """What the decoder needs besides the blobs, as a small str -> int/str dict.

        ffmpeg codecs need nothing (the bitstreams are self-describing), so the
        default is empty: every byte in the file counts.
        """
        return {}

    def check_quality(self, quality: int) -> int:
        """Validate ``quality`` against :attr:`quality_range` and return it as an int."""
        lo, hi = self.quality_range
        if isinstance(quality, bool) or int(quality) != quality or not lo <= int(quality) <= hi:
            raise ConfigError(f"{self.name} keyframe quality must be an integer in [{lo}, {hi}], got {quality!r}")
        return int(quality)

    def check_format(self, pix_fmt: PixFmtLike) -> PixelFormat:
        """Resolve ``pix_fmt`` and refuse formats this codec cannot code."""
        fmt = as_pixel_format(pix_fmt)
        if not self.supports(fmt):
            raise ConfigError(f"the {self.name} keyframe codec cannot code {fmt.name} frames")
        return fmt

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} id={self.codec_id}>"


# --------------------------------------------------------------------------- padding


def pad_frames(frames: Frames, width: int, height: int) -> Frames:
    """Grow frames to ``width``x``height`` by repeating the last row/column of every plane.

    Edge replication (rather than zeros) keeps the padded area flat and cheap
    for an intra coder, and it is invisible after :func:`crop_frames`.
    Chroma planes are grown to the chroma size of the padded luma size.
    """
    if width < frames.width or height < frames.height:
        raise ValueError("pad_frames cannot shrink frames")
    if (width, height) == (frames.width, frames.height):
        return frames
    shapes = frames.pix_fmt.plane_shapes(width, height)
    planes = []
    for plane, (h, w) in zip(frames.planes, shapes):
        planes.append(np.pad(plane, ((0, 0), (0, h - plane.shape[1]), (0, w - plane.shape[2])), mode="edge"))
    return Frames(tuple(planes), frames.pix_fmt)


def crop_frames(frames: Frames, width: int, height: int) -> Frames:
    """Keep the top-left ``width``x``height`` of every frame (the inverse of :func:`pad_frames`)."""
    shapes = frames.pix_fmt.plane_shapes(width, height)
    planes = tuple(np.ascontiguousarray(p[:, :h, :w]) for p, (h, w) in zip(frames.planes, shapes))
    return Frames(planes, frames.pix_fmt)


# --------------------------------------------------------------------------- blob packing


def join_streams(streams: Sequence[bytes]) -> bytes:
    """Several bitstreams of one keyframe in one blob: each but the last behind its LEB128 length,
    the last running to the end of the blob."""
    w = Writer()
    for s in streams[:-1]:
        w.blob(s)
    return w.raw(streams[-1]).getvalue()


def split_streams(blob: bytes, count: int, what: str = "keyframe") -> List[bytes]:
    """Inverse of :func:`join_streams` for ``count`` streams; a truncated blob raises :class:`FormatError`."""
    r = Reader(blob, what)
    streams = [r.blob() for _ in range(count - 1)]
    return streams + [r.raw(r.remaining)]


# --------------------------------------------------------------------------- rate control


def choose_quality(codec: KeyframeCodec, frames: Frames, target_bytes: int,
                   quality_range: Optional[Tuple[int, int]] = None) -> Tuple[int, List[bytes]]:
    """Largest quality whose keyframes fit ``target_bytes``; return ``(quality, blobs)``.

    Size is measured as :func:`packed_size` (what the file stores).  If even
    the lowest quality is over budget, that lowest quality's result is
    returned (the caller decides whether to warn).  The search is
    :func:`search_quality`'s.
    """
    lo, hi = quality_range if quality_range is not None else codec.quality_range
    lo, hi = codec.check_quality(lo), codec.check_quality(hi)
    return search_quality(lambda q: codec.encode(frames, q), packed_size, lo, hi, target_bytes)


def search_quality(encode: Callable[[int], T], size: Callable[[T], int], lo: int, hi: int,
                   target_bytes: int) -> Tuple[int, T]:
    """Largest quality in ``[lo, hi]`` whose ``encode(quality)`` has ``size`` at most ``target_bytes``;
    return ``(quality, what encode returned)``, or ``lo``'s when nothing fits.

    The search keeps a bracket ``[fits, too big)`` like a binary search, so it
    finds the same answer when size grows with quality.  Encodes are costly
    (VVC takes up to a second per small keyframe), so once two sizes are
    known the next probe is interpolated (or extrapolated) on log(size),
    which is nearly linear in QP, and its neighbour is probed at once to
    close the bracket: about 4 encodes on average instead of
    log2(range) + 1 = 7 (checked against brute force on synthetic size
    curves), and the slow top quality is never encoded unless it may fit.
    Bisection remains the fallback whenever interpolation has nothing to
    work with, and follows any guess that did not halve the bracket, so
    noisy or flat size curves cost at most a few encodes more than a
    binary search.
    """
    if lo > hi:
        raise ConfigError(f"empty quality range [{lo}, {hi}]")
    cache: Dict[int, T] = {}
    sizes: Dict[int, int] = {}

    def fits(q: int) -> bool:
        if q not in cache:
            cache[q] = encode(q)
            sizes[q] = size(cache[q])
        return sizes[q] <= target_bytes

    if not fits(lo):
        return lo, cache[lo]
    good, bad = lo, hi + 1  # invariant: good fits; bad does not (hi + 1 stands for "beyond the range")

    def estimate() -> Optional[int]:
        """Interpolate (or extrapolate from the two best fitting probes) the crossing on log(size)."""
        if bad in sizes:
            q0, q1 = good, bad
        else:
            below = [q for q in sizes if q < good]
            if not below:
                return None
            q0, q1 = max(below), good
        s0, s1 = sizes[q0], sizes[q1]
        if not 0 < s0 < s1:
            return None
        slope = (math.log(s1) - math.log(s0)) / (q1 - q0)
        return q0 + int(math.floor((math.log(target_bytes) - math.log(s0)) / slope))

    bisect = False
    while bad - good > 1:
        width = bad - good
        est = estimate() if width > 2 and not bisect else None
        bisect = False
        if est is None:
            q = (good + bad) // 2
            if fits(q):
                good = q
            else:
                bad = q
            continue
        q = min(max(est, good + 1), bad - 1)
        if fits(q):  # then check the next quality at once: usually it closes the bracket
            good = q
            if q + 1 < bad:
                if fits(q + 1):
                    good = q + 1
                else:
                    bad = q + 1
        else:
            bad = q
            if q - 1 > good:
                if fits(q - 1):
                    good = q - 1
                else:
                    bad = q - 1
        bisect = bad - good > width // 2   # a guess that did not halve the bracket: bisect next
    return good, cache[good]
