"""Keyframe codecs: how D-NeRV's conditioning frames are stored in a .nerv file.

Typical use (see docs/keyframes.md)::

    codec = default_keyframe_codec(keyframes.pix_fmt)    # vvc, or hevc for 4:2:2/4:4:4/12-bit
    quality, blobs = choose_quality(codec, keyframes, target_bytes)
    decoded = codec.decode(blobs, keyframes.pix_fmt, w, h, codec.params(quality))  # fit on these
    section = pack_blobs(blobs)                          # + codec.codec_id, codec.params(quality)

    # decoder
    codec = keyframe_codec_by_id(codec_id, **user_options)   # weights_path=... for learned codecs
    frames = codec.decode(unpack_blobs(section), pix_fmt, w, h, params)

Importing this package does not import torch: the learned codecs load it on
first use.
"""
from ..container.keyframes import pack_blobs, packed_size, unpack_blobs
from .base import (KeyframeCodec, ParamValue, as_pixel_format, choose_quality, crop_frames, pad_frames,
                   search_quality)
from .ffmpeg_codecs import (Av1Codec, FFmpegIntraCodec, HevcCodec, JxlCodec, VvcCodec, VvcInterCodec,
                            ffmpeg_has_decoder, ffmpeg_has_encoder)
from .learned import LEARNED_MODELS, CompressAICodec, rgb_to_yuv, yuv_to_rgb
from .registry import (DEFAULT_KEYFRAME_CODEC, FALLBACK_KEYFRAME_CODEC, KEYFRAME_CODECS, NO_KEYFRAME_CODEC_ID,
                       CodecSpec, default_keyframe_codec, keyframe_codec, keyframe_codec_by_id)

__all__ = [
    "KeyframeCodec", "ParamValue", "as_pixel_format", "choose_quality", "search_quality", "crop_frames", "pad_frames",
    "pack_blobs", "unpack_blobs", "packed_size",
    "FFmpegIntraCodec", "HevcCodec", "VvcCodec", "VvcInterCodec", "Av1Codec", "JxlCodec", "ffmpeg_has_encoder",
    "ffmpeg_has_decoder",
    "CompressAICodec", "LEARNED_MODELS", "yuv_to_rgb", "rgb_to_yuv",
    "CodecSpec", "KEYFRAME_CODECS", "DEFAULT_KEYFRAME_CODEC", "FALLBACK_KEYFRAME_CODEC", "NO_KEYFRAME_CODEC_ID",
    "keyframe_codec", "keyframe_codec_by_id", "default_keyframe_codec",
]
