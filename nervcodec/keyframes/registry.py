"""Names and stable ids of the keyframe codecs, and factories to build them.

The ids are written in .nerv files as one byte: never renumber or reuse one.
0 is reserved for "no keyframes" (models that do not use any).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from ..errors import ConfigError, FormatError
from .base import KeyframeCodec, PixFmtLike
from .ffmpeg_codecs import Av1Codec, FFmpegIntraCodec, HevcCodec, JxlCodec, VvcCodec, VvcInterCodec
from .learned import CompressAICodec

__all__ = ["CodecSpec", "KEYFRAME_CODECS", "DEFAULT_KEYFRAME_CODEC", "FALLBACK_KEYFRAME_CODEC",
           "NO_KEYFRAME_CODEC_ID", "keyframe_codec", "keyframe_codec_by_id", "default_keyframe_codec"]

#: Id meaning "this file has no keyframes".
NO_KEYFRAME_CODEC_ID = 0


@dataclass(frozen=True)
class CodecSpec:
    """One registry entry: the stable name and id, and how to build the codec."""

    name: str
    codec_id: int
    learned: bool
    description: str
    factory: Callable[..., KeyframeCodec]

    def create(self, **options: Any) -> KeyframeCodec:
        """Build the codec; ``options`` go to its constructor (preset, weights_path, ...)."""
        try:
            return self.factory(**options)
        except TypeError as exc:  # unknown keyword
            raise ConfigError(f"bad option for the {self.name} keyframe codec: {exc}") from None


def _learned(name: str, codec_id: int, what: str) -> CodecSpec:
    return CodecSpec(name, codec_id, True, what,
                     lambda **kw: CompressAICodec(name, codec_id, **kw))


KEYFRAME_CODECS: Dict[str, CodecSpec] = {
    spec.name: spec
    for spec in (
        CodecSpec("hevc", HevcCodec.codec_id, False, "HEVC intra, libx265 (quality = 51 - QP)", HevcCodec),
        CodecSpec("vvc", VvcCodec.codec_id, False, "VVC intra, libvvenc (quality = 63 - QP); slow", VvcCodec),
        CodecSpec("vvc-ra", VvcInterCodec.codec_id, False,
                  "VVC random access, libvvenc: keyframes predicted from each other (quality = 63 - QP)",
                  VvcInterCodec),
        CodecSpec("av1", Av1Codec.codec_id, False, "AV1 still pictures, libaom (quality = 63 - CRF)", Av1Codec),
        CodecSpec("jxl", JxlCodec.codec_id, False, "JPEG XL per plane, libjxl (distance 15 * 2^(-q/8))", JxlCodec),
        _learned("bmshj2018-factorized", 16, "compressai factorized prior (portable bitstream)"),
        _learned("bmshj2018-hyperprior", 17, "compressai scale hyperprior (not portable)"),
        _learned("mbt2018-mean", 18, "compressai mean-scale hyperprior (not portable)"),
        _learned("mbt2018", 19, "compressai joint autoregressive + hyperprior (not portable)"),
        _learned("cheng2020-anchor", 20, "compressai Cheng 2020 anchor (not portable)"),
        _learned("cheng2020-attn", 21, "compressai Cheng 2020 with attention, as in D-NeRV (not portable)"),
    )
}

#: Chosen on the dev clips: vvc (intra) by benchmarks/keyframes.py among the intra codecs, then vvc-ra by
#: whole encodes (docs/keyframes.md, "Inter-coded keyframes"; docs/benchmarks.md).
DEFAULT_KEYFRAME_CODEC = "vvc-ra"
#: Used when the default cannot code a pixel format (vvenc takes 4:2:0 and gray only) or is missing.
FALLBACK_KEYFRAME_CODEC = "hevc"

_BY_ID = {spec.codec_id: spec for spec in KEYFRAME_CODECS.values()}
assert len(_BY_ID) == len(KEYFRAME_CODECS) and NO_KEYFRAME_CODEC_ID not in _BY_ID


def keyframe_codec(name: str = DEFAULT_KEYFRAME_CODEC, **options: Any) -> KeyframeCodec:
    """Build the keyframe codec called ``name`` (options: see each codec's constructor)."""
    spec = KEYFRAME_CODECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown keyframe codec {name!r} (known: {', '.join(KEYFRAME_CODECS)})")
    return spec.create(**options)


def keyframe_codec_by_id(codec_id: int, **options: Any) -> KeyframeCodec:
    """Build the codec a file names by its id byte; an unknown id is a :class:`FormatError`."""
    spec = _BY_ID.get(codec_id)
    if spec is None:
        raise FormatError(f"unknown keyframe codec id {codec_id} (a newer nervcodec wrote this file?)")
    return spec.create(**options)


def default_keyframe_codec(pix_fmt: Optional[PixFmtLike] = None) -> KeyframeCodec:
    """The default codec for frames of ``pix_fmt``: :data:`DEFAULT_KEYFRAME_CODEC` when it can code
    them with the ffmpeg in use, else :data:`FALLBACK_KEYFRAME_CODEC` (x265 takes every format)."""
    codec = keyframe_codec(DEFAULT_KEYFRAME_CODEC)
    ok = pix_fmt is None or codec.supports(pix_fmt)
    if ok and isinstance(codec, FFmpegIntraCodec):
        ok = codec.available()
    return codec if ok else keyframe_codec(FALLBACK_KEYFRAME_CODEC)
