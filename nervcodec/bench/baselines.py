"""Conventional codec anchors: pure builders of ffmpeg argument lists, and their registry.

The encoder settings are those of the NeRV-family papers' baselines (the "seed
paper" settings), which are deliberately weak: medium preset, no B-frames,
constant rate factor::

    -c:v libx264 -preset medium -bf 0 -crf CRF
    -c:v libx265 -preset medium -x265-params bframes=0 -crf CRF

What is counted differs from the papers, on purpose.  By default a baseline's
rate is the size of its **elementary stream without the encoder's settings
SEI**: x264 and x265 write their whole command line into the stream as an SEI
message, and an mp4 adds its boxes; on a 48-frame QCIF clip at CRF 28 the
x265 file is 13,177 bytes in mp4 and 9,794 bytes as a raw stream without
the SEI, so counting them would inflate the anchor's rate by a third.
x264's SEI is removed by the ``filter_units`` bitstream filter (NAL type 6),
x265's is never written (``info=0``).  ``container="mp4", sei=True`` gives the
papers' files.  The baselines keep the source's bit depth and chroma format
(x264 and x265 code 8- and 10-bit 4:2:0/4:2:2/4:4:4 and gray; only x265 does
12-bit).  ``preset`` and ``bframes`` make stronger anchors
(``veryslow``, B-frames on) one option away, and :func:`describe` prints the
exact settings so a reader of the results knows which anchor they face.

Builders return argument lists *without* the ffmpeg binary, compiled by the
adapter's :func:`~nervcodec.tools.ffmpeg.build_args` (ffmpeg-python, which writes
the output options sorted by name); the adapter adds the binary when it runs
them.  Nothing here runs anything, which is what lets tests check the commands
exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from ..errors import ConfigError
from ..tools.ffmpeg import SWS_FLAGS, build_args

__all__ = [
    "X264_PRESETS", "CONTAINERS", "ENCODER_PIX_FMTS", "BaselineSettings", "Baseline", "BASELINES", "get_baseline",
    "x264_codec_args", "x265_codec_args", "encode_args", "decode_args", "describe", "output_name",
]

#: Presets shared by x264 and x265, fastest first.
X264_PRESETS: Tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                 "slower", "veryslow", "placebo")

#: Output containers: extension and ffmpeg muxer per codec.  "raw" (the Annex-B elementary stream)
#: is the default: it carries nothing but the video; mp4 is what the papers' anchors stored.
CONTAINERS: Dict[str, Dict[str, Tuple[str, str]]] = {
    "mp4": {"h264": (".mp4", "mp4"), "hevc": (".mp4", "mp4")},
    "mkv": {"h264": (".mkv", "matroska"), "hevc": (".mkv", "matroska")},
    "raw": {"h264": (".264", "h264"), "hevc": (".265", "hevc")},
}

MAX_CRF = 51


@dataclass(frozen=True)
class BaselineSettings:
    """Encoder settings shared by every point of a baseline sweep (everything but the CRF)."""

    preset: str = "medium"
    bframes: int = 0
    pix_fmt: str = "yuv420p"
    container: str = "raw"
    sei: bool = False        # keep the encoder's settings SEI (the papers' files)

    def __post_init__(self) -> None:
        if self.preset not in X264_PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r} (known: {', '.join(X264_PRESETS)})")
        if not 0 <= self.bframes <= 16:
            raise ConfigError(f"--bframes must be in 0..16, got {self.bframes}")
        if self.container not in CONTAINERS:
            raise ConfigError(f"unknown container {self.container!r} (known: {', '.join(CONTAINERS)})")


def _check_crf(crf: int) -> int:
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= MAX_CRF:
        raise ConfigError(f"--crf must be an integer in 0..{MAX_CRF}, got {crf!r}")
    return crf


def x264_codec_args(crf: int, preset: str = "medium", bframes: int = 0, sei: bool = False) -> List[str]:
    """libx264 arguments: the seed paper's ``-preset medium -bf 0 -crf CRF``, and without ``sei``
    the bitstream filter that drops SEI NAL units (x264's only one is its settings string)."""
    args = ["-c:v", "libx264", "-preset", preset, "-bf", str(bframes), "-crf", str(_check_crf(crf))]
    return args if sei else args + ["-bsf:v", "filter_units=remove_types=6"]


def x265_codec_args(crf: int, preset: str = "medium", bframes: int = 0, sei: bool = False) -> List[str]:
    """libx265 arguments: the seed paper's ``-preset medium -x265-params bframes=0 -crf CRF``, and
    without ``sei`` ``info=0`` (no settings SEI written)."""
    params = f"bframes={bframes}" + ("" if sei else ":info=0")
    return ["-c:v", "libx265", "-preset", preset, "-x265-params", params, "-crf", str(_check_crf(crf))]


#: Pixel formats each encoder codes (the source's own is used; others are refused).
ENCODER_PIX_FMTS: Dict[str, Tuple[str, ...]] = {
    "libx264": ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le", "gray", "gray10le"),
    "libx265": ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le", "yuv420p12le",
                "yuv422p12le", "yuv444p12le", "gray", "gray10le", "gray12le"),
}


@dataclass(frozen=True)
class Baseline:
    """One conventional codec: registry name, ffmpeg encoder and the builder of its codec arguments."""

    name: str
    encoder: str
    label: str
    codec_args: Callable[[int, str, int, bool], List[str]]


BASELINES: Dict[str, Baseline] = {
    "h264": Baseline("h264", "libx264", "H.264 (x264)", x264_codec_args),
    "hevc": Baseline("hevc", "libx265", "HEVC (x265)", x265_codec_args),
}


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})") from None


def output_name(codec: str, crf: int, settings: BaselineSettings) -> str:
    """File name of one encoded point, e.g. ``hevc_crf28.mp4``."""
    ext, _ = CONTAINERS[settings.container][get_baseline(codec).name]
    return f"{codec}_crf{crf}{ext}"


def _as_options(args: List[str]) -> Dict[str, str]:
    """``["-c:v", "libx264", "-crf", "28"]`` -> ``{"c:v": "libx264", "crf": "28"}`` (codec arguments are pairs)."""
    if len(args) % 2 or not all(a.startswith("-") for a in args[::2]) or len(set(args[::2])) != len(args) // 2:
        raise ValueError(f"codec arguments must be distinct -option value pairs, got {args}")
    return {k[1:]: v for k, v in zip(args[::2], args[1::2])}


def encode_args(codec: str, source: str, output: str, crf: int,
                settings: BaselineSettings = BaselineSettings()) -> List[str]:
    """Full ffmpeg arguments encoding the first video stream of ``source`` at ``crf`` into ``output``.

    Audio, subtitles and data streams are dropped so the file's size is the video's.
    """
    base = get_baseline(codec)
    _, muxer = CONTAINERS[settings.container][base.name]
    options: Dict[str, object] = {"an": None, "sn": None, "dn": None,
                                  **_as_options(base.codec_args(crf, settings.preset, settings.bframes,
                                                                settings.sei)),
                                  "pix_fmt": settings.pix_fmt, "f": muxer}
    return build_args(str(source), str(output), streams=["0:v:0"], output_options=options)


def decode_args(encoded: str, output_y4m: str, pix_fmt: str) -> List[str]:
    """ffmpeg arguments decoding ``encoded`` to a y4m file in ``pix_fmt`` (the source's format).

    Decoding into the source's own format lets every codec's output be compared
    plane by plane with the source; for 8-bit 4:2:0 sources it is no conversion
    at all.  ``-strict -1`` is required for y4m deeper than 8 bits.
    """
    return build_args(str(encoded), str(output_y4m), streams=["0:v:0"],
                      output_options={"sws_flags": SWS_FLAGS, "pix_fmt": pix_fmt, "strict": -1,
                                      "f": "yuv4mpegpipe"})


def describe(codec: str, settings: BaselineSettings) -> str:
    """The settings of a baseline as one line, with CRF as a placeholder."""
    args = get_baseline(codec).codec_args(0, settings.preset, settings.bframes, settings.sei)
    args[args.index("-crf") + 1] = "CRF"
    kept = "with the encoder's settings SEI" if settings.sei else "settings SEI removed"
    stream = "raw elementary stream" if settings.container == "raw" else settings.container
    return f"{' '.join(args)} -pix_fmt {settings.pix_fmt} ({stream}, {kept})"
