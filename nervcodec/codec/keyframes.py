"""D-NeRV's keyframes in the codec: coded at the quality that fits their share of the budget
(encoder), and decoded on demand for random access (decoder).

The section's bytes are :mod:`nervcodec.container.keyframes`'s business.  Blob k
is the k-th keyframe in (video, frame) order, with the frames of each video given
by :meth:`Layout.keyframe_indices`; because every blob stands alone, decoding one
clip needs only its two keyframes.
"""
from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from collections.abc import Sequence as SequenceABC
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..container.keyframes import pack_keyframe_section, parse_keyframe_section
from ..errors import FormatError
from ..io.cache import ArrayStore, DiskCache
from ..io.video import Frames, VideoInfo
from ..keyframes import (KEYFRAME_CODECS, default_keyframe_codec, keyframe_codec, keyframe_codec_by_id,
                         search_quality)
from ..model import model_spec
from .config import EncodeConfig
from .layout import Item, Layout
from .tiles import upsample_chroma

__all__ = ["KeyframePlan", "KeyframeReader", "encode_keyframes", "KEYFRAME_SHARE", "keyframe_codec_name",
           "build_codec"]

# Share of the byte budget given to keyframes when sizing by rate (``--keyframe-share``
# overrides it).  D-NeRV's reference spends 50-76% of its rate on keyframes.  Measured
# here (D-NeRV, VVC keyframes, keyframe substitution, 150 epochs on a CPU, PSNR-RGB of
# the decoded file; docs/benchmarks.md): people 0.5 bpp 31.66 / 33.72 / 34.59 / 34.02 /
# 34.74 dB at shares of 23 / 33 / 46 / 50 / 76%; people 1.0 bpp 33.96 / 35.09 / 36.33 /
# 36.00 at 34 / 50 / 53 / 69%; carphone 0.5 bpp 34.23 / 34.17 / 34.97 at 20 / 35 / 52%.
# Half was never far from the best with 7.5-bit weights.  The rate-aware fit halves what a
# weight costs (about 4 bits), so the same network takes less of the file: at 0.6 the network
# keeps roughly its former size and the keyframes get the bytes saved.  Measured with the
# rate-aware fit on people (PSNR-RGB at 0.25 / 0.5 bpp): shares 0.6 -> 32.76 / 34.86 dB,
# 0.7 -> 33.01 / 34.41, 0.8 -> 32.79 / - (nervcodec 0.5 at share 0.5: 32.53 / 34.57); single fits
# differ by +-0.3 dB, so 0.6 is the principled middle, not a tuned optimum.  Longer fits make
# the network stronger and may want less.
KEYFRAME_SHARE = 0.6


@dataclass(frozen=True)
class KeyframePlan:
    section: bytes
    decoded: Mapping[Tuple[int, int], np.ndarray]   # (video, frame) -> (C, H, W) full resolution (maybe on disk)
    codec_name: str
    quality: int
    native: Mapping[Tuple[int, int], List[np.ndarray]] = field(default_factory=dict)  # decoded planes, native format
    top: bool = False           # ``quality`` is the codec's highest: no more bytes can buy better keyframes

    def source(self, items: Sequence[Item]) -> Mapping[Tuple[int, int], np.ndarray]:
        return self.decoded

    def planes(self, video: int, frame: int) -> List[np.ndarray]:
        return self.native[(video, frame)]


def keyframe_codec_name(codec_id: int) -> str:
    for spec in KEYFRAME_CODECS.values():
        if spec.codec_id == codec_id:
            return spec.name
    return f"unknown-{codec_id}"


def build_codec(name: Optional[str] = None, codec_id: Optional[int] = None, weights: Optional[str] = None):
    """The keyframe codec by name (encoder) or id (decoder); learned codecs get the weights file."""
    spec_name = name if name is not None else keyframe_codec_name(codec_id if codec_id is not None else -1)
    spec = KEYFRAME_CODECS.get(spec_name)
    options = {"weights_path": weights} if spec is not None and spec.learned else {}
    if name is not None:
        return keyframe_codec(name, **options)
    return keyframe_codec_by_id(int(codec_id), **options)


def _keyframe_list(infos: Sequence[VideoInfo], layout: Layout) -> List[Tuple[int, int]]:
    return [(vi, f) for vi, v in enumerate(infos) for f in layout.keyframe_indices(v, vi)]


class _VideoKeyframes(SequenceABC):
    """The keyframes of each video as :class:`Frames`, gathered when asked for (not all at once)."""

    def __init__(self, infos: Sequence[VideoInfo], frames: Sequence[Frames], layout: Layout):
        self.infos, self.frames, self.layout = infos, frames, layout

    def __len__(self) -> int:
        return len(self.infos)

    def __getitem__(self, vi: int) -> Frames:  # type: ignore[override]
        idx = self.layout.keyframe_indices(self.infos[vi], vi)
        fr = self.frames[vi]
        return Frames(tuple(np.asarray(p[idx]) for p in fr.planes), fr.pix_fmt)


def encode_keyframes(infos: Sequence[VideoInfo], frames: Sequence[Frames], layout: Layout, cfg: EncodeConfig,
                     budget: Optional[int], cache: Optional[DiskCache] = None, *, target: Optional[int] = None,
                     local: bool = False, above: Optional[int] = None) -> KeyframePlan:
    """Code the keyframes of every video, choosing the quality to fit their share of ``budget`` (or
    ``target`` bytes, when given); ``above``: a quality known to fit, which the search starts past (the
    codec's top quality when it is that already).

    With a ``cache`` the decoded keyframes are kept in it, not in memory.  ``local``: this process codes
    every video itself (under torchrun the videos are otherwise dealt over the ranks, which must all call)."""
    fmt = infos[0].pix_fmt
    codec = build_codec(cfg.keyframe_codec or _default_name(fmt), weights=cfg.keyframe_weights)
    codec.check_format(fmt)
    if not getattr(codec, "portable", True):
        warnings.warn(f"keyframe codec {codec.name} is a hyperprior/autoregressive model whose bitstreams may not "
                      f"decode identically on another machine or device", stacklevel=2)
    keys = _keyframe_list(infos, layout)
    blobs: List[bytes] = []
    decoded: Any = ArrayStore(cache, "keyframes.raw", single=True) if cache is not None else {}
    native: Any = ArrayStore(cache, "keyframes-native.raw") if cache is not None else {}
    # one quality for the whole collection, chosen on all keyframes together
    per_video = _VideoKeyframes(infos, frames, layout)
    if target is None and budget is not None:
        target = int(budget * keyframe_share(cfg))
    if cfg.keyframe_quality is not None:
        quality = codec.check_quality(cfg.keyframe_quality)
        coded = _encode_all(codec, per_video, quality, local)
    elif target is not None:
        quality, coded = _choose(codec, per_video, target, local, above)
    else:
        quality = _default_quality(codec)
        coded = _encode_all(codec, per_video, quality, local)
    params = codec.params(quality)
    for vi, (v, bl) in enumerate(zip(infos, coded)):
        dec = codec.decode(bl, fmt, v.width, v.height, params)
        full = upsample_chroma(dec)
        for k, f in enumerate(layout.keyframe_indices(v, vi)):
            if cache is not None:
                decoded.put((vi, f), full[k])
                native.put((vi, f), [p[k] for p in dec.planes])
            else:
                decoded[(vi, f)] = full[k]
                native[(vi, f)] = [p[k] for p in dec.planes]
        blobs.extend(bl)
    assert len(blobs) == len(keys)
    return KeyframePlan(pack_keyframe_section(codec.codec_id, params, quality, blobs), decoded, codec.name, quality, native,
                        top=quality >= codec.quality_range[1])


def keyframe_share(cfg: EncodeConfig) -> float:
    """The share of a rate budget the keyframes get: --keyframe-share, else the model's own default
    (``ModelSpec.keyframe_share``), else KEYFRAME_SHARE."""
    if cfg.keyframe_share is not None:
        return cfg.keyframe_share
    own = model_spec(cfg.model).keyframe_share
    return own if own is not None else KEYFRAME_SHARE


def _encode_all(codec, per_video: Sequence[Frames], quality: int, local: bool = False) -> List[List[bytes]]:
    """Every video's keyframes coded at ``quality``; under torchrun (unless ``local``) the videos are dealt
    over the ranks and the blobs gathered on every rank (image codecs are deterministic, so every rank
    ends with the same section)."""
    from ..distributed import current, map_over_ranks
    return map_over_ranks(lambda kf: codec.encode(kf, quality), per_video, None if local else current())


def _default_name(fmt) -> str:
    c = default_keyframe_codec(fmt)
    return c if isinstance(c, str) else c.name


def _default_quality(codec) -> int:
    """With a parameter budget instead of a rate, keyframes get a high fixed quality (3/4 of the range)."""
    lo, hi = codec.quality_range
    return lo + (3 * (hi - lo)) // 4


def _choose(codec, per_video: Sequence[Frames], target: int, local: bool = False,
            above: Optional[int] = None) -> Tuple[int, List[List[bytes]]]:
    """Largest quality whose keyframes (all videos together) fit ``target`` bytes (the lowest quality's
    when none does), found by :func:`~nervcodec.keyframes.search_quality`: about 4 codings of the
    keyframes instead of a binary search's 6-7; past ``above`` when that is known to fit."""
    lo, hi = codec.quality_range
    if above is not None:
        lo = min(max(lo, above + 1), hi)
    return search_quality(lambda q: _encode_all(codec, per_video, q, local),
                          lambda coded: sum(len(b) for bl in coded for b in bl), lo, hi, target)


class KeyframeReader:
    """Decodes keyframes on demand (with a cache), for random access."""

    def __init__(self, data: bytes, infos: Sequence[VideoInfo], layout: Layout, weights: Optional[str] = None):
        self.section = parse_keyframe_section(data)
        self.infos, self.layout = infos, layout
        need = sum(layout.num_keyframes(v, vi) for vi, v in enumerate(infos))  # counted before any list is built from it
        if need != len(self.section.blobs):
            raise FormatError(f"keyframes section holds {len(self.section.blobs)} keyframes, "
                              f"the layout needs {need}")
        self.keys = _keyframe_list(infos, layout)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.codec = build_codec(codec_id=self.section.codec_id, weights=weights)
        self.cache: Dict[Tuple[int, int], np.ndarray] = {}
        self.native: Dict[Tuple[int, int], List[np.ndarray]] = {}
        self.streams: Dict[int, Tuple[Dict[int, int], Frames]] = {}   # inter-coded keyframes: per video, all
        self._pending: Dict[int, Future] = {}      # streams being decoded in the background (prefetch)
        self.bytes = len(data)

    def prefetch(self, videos: Sequence[int]) -> None:
        """Start decoding the keyframe streams of ``videos`` in the background, so that ffmpeg (its own
        process) works while the caller does something else, such as entropy-decoding the weights; the
        first :meth:`source` or :meth:`planes` that needs a stream waits for it.  Only for a codec whose
        keyframes decode as one stream per video (``independent`` False), where any frame needs all of
        them anyway; independent keyframes stay on demand (random access decodes only its own)."""
        if self.codec.independent:
            return
        todo = [vi for vi in dict.fromkeys(videos) if vi not in self.streams and vi not in self._pending]
        if todo:
            pool = ThreadPoolExecutor(max_workers=1)
            self._pending.update((vi, pool.submit(self._decode_stream, vi)) for vi in todo)
            pool.shutdown(wait=False)     # the submitted work still runs; the pool takes nothing more

    @property
    def codec_name(self) -> str:
        return self.codec.name

    def source(self, items: Sequence[Item]) -> Dict[Tuple[int, int], np.ndarray]:
        need = sorted({(it.video, f) for it in items for f in it.keyframes} - set(self.cache))
        by_video: Dict[int, List[int]] = {}
        for vi, f in need:
            by_video.setdefault(vi, []).append(f)
        for vi, fs in by_video.items():
            dec = self._decode(vi, fs)
            full = upsample_chroma(dec)
            for k, f in enumerate(fs):
                self.cache[(vi, f)] = full[k]
                self.native[(vi, f)] = [p[k] for p in dec.planes]
        # keep the cache small: only what these items use
        keep = {(it.video, f) for it in items for f in it.keyframes}
        for k in list(self.cache):
            if k not in keep:
                del self.cache[k]
                self.native.pop(k, None)
        return self.cache

    def planes(self, video: int, frame: int) -> List[np.ndarray]:
        """The decoded keyframe in its native planes (shown as-is at keyframe positions)."""
        if (video, frame) not in self.native:
            if (video, frame) not in self.index:
                raise FormatError(f"frame {frame} of video {video} is not a keyframe")
            dec = self._decode(video, [frame])
            return [p[0] for p in dec.planes]
        return self.native[(video, frame)]

    def _decode(self, video: int, frames: Sequence[int]) -> Frames:
        """Keyframes ``frames`` of ``video`` decoded, in that order.  A codec whose keyframes predict
        each other (``independent`` False) decodes the video's whole keyframe stream, once: it is kept."""
        v = self.infos[video]
        if self.codec.independent:
            blobs = [self.section.blobs[self.index[(video, f)]] for f in frames]
            return self.codec.decode(blobs, v.pix_fmt, v.width, v.height, self.section.params)
        if video not in self.streams:
            job = self._pending.pop(video, None)
            self.streams[video] = job.result() if job is not None else self._decode_stream(video)
        at, whole = self.streams[video]
        pick = [at[f] for f in frames]
        return Frames(tuple(p[pick] for p in whole.planes), whole.pix_fmt)

    def _decode_stream(self, video: int) -> Tuple[Dict[int, int], Frames]:
        """A video's whole keyframe stream: (frame -> position in it, the decoded frames)."""
        v = self.infos[video]
        own = [k for k in self.keys if k[0] == video]
        whole = self.codec.decode([self.section.blobs[self.index[k]] for k in own], v.pix_fmt, v.width,
                                  v.height, self.section.params)
        return {f: i for i, (_, f) in enumerate(own)}, whole

