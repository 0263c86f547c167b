"""Conversion of native YUV frames to 8-bit RGB by ffmpeg's default conversion.

PSNR-RGB is only comparable with the NeRV papers (and between codecs) when
every video goes through the *same* YUV->RGB conversion.  We let ffmpeg do it
with its defaults (``-pix_fmt rgb24``, no colour options), feeding it the raw
planes rather than the files: raw input carries no colour tags, so a source
tagged BT.709 and a decoded y4m without tags are still converted identically.
For untagged files (y4m, the baselines' mp4) this gives byte-for-byte the same
RGB as converting the file itself, which is what an independent check does.
The command line is compiled by :func:`~nervcodec.tools.ffmpeg.build_args`.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..errors import ToolError
from ..io.video import Frames, PixelFormat
from ..tools.ffmpeg import build_args, run_ffmpeg

__all__ = ["rgb24_args", "frames_to_rgb24", "frame_rgb24", "MAX_PIPE_BYTES"]

#: Frames are converted in chunks of at most this many input bytes (one ffmpeg run each).
MAX_PIPE_BYTES = 48 * 1024 * 1024


def rgb24_args(pix_fmt: PixelFormat, width: int, height: int) -> List[str]:
    """ffmpeg arguments (no binary) that read raw planes on stdin and write rgb24 on stdout."""
    return build_args("-", "-", input_options={"f": "rawvideo", "pix_fmt": pix_fmt.name, "s": f"{width}x{height}"},
                      streams=["0:v:0"], output_options={"f": "rawvideo", "pix_fmt": "rgb24"})


def frame_rgb24(frames: Frames, index: int) -> np.ndarray:
    """Frame ``index`` of ``frames`` as one (H, W, 3) uint8 image (the same conversion)."""
    return frames_to_rgb24(frames[index])[0]


def frames_to_rgb24(frames: Frames) -> np.ndarray:
    """Convert a batch of native frames to an (N, H, W, 3) uint8 array with ffmpeg's default conversion."""
    n, w, h = frames.num_frames, frames.width, frames.height
    out = np.empty((n, h, w, 3), np.uint8)
    if n == 0:
        return out
    per_frame = frames.pix_fmt.frame_bytes(w, h)
    chunk = max(1, MAX_PIPE_BYTES // per_frame)
    args = rgb24_args(frames.pix_fmt, w, h)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        raw = b"".join(frames.to_bytes(i) for i in range(start, stop))
        rgb = run_ffmpeg(args, what="converting frames to RGB", input=raw, capture_stdout=True)
        expected = (stop - start) * h * w * 3
        if len(rgb) != expected:
            raise ToolError(f"ffmpeg returned {len(rgb)} bytes of RGB for {stop - start} frames "
                            f"of {w}x{h}, expected {expected}")
        out[start:stop] = np.frombuffer(rgb, np.uint8).reshape(stop - start, h, w, 3)
    return out
