"""Video input and output.

* :func:`open_video` / :func:`read_video` read any video: .y4m with our own
  streaming parser, PNG sequences (a folder of PNGs or ``frames/%05d.png``, at
  ``fps`` frames per second, default 25) with imageio reading the files and ffmpeg
  converting the colours, everything else through ffmpeg piping y4m.
* :func:`open_writer` / :func:`write_video` write .y4m, lossless FFV1 .mkv or a PNG
  sequence, atomically (a temporary file beside the target, renamed on success).

Frames stay in their native planar pixel format throughout (see :mod:`.video`).
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, Tuple, Union

from .png import DEFAULT_PNG_FPS, FpsLike, PNGSequenceReader, parse_fps
from .reader import FFmpegVideoReader, VideoReader, Y4MVideoReader, choose_pix_fmt, open_video
from .video import PIXEL_FORMATS, Frames, PixelFormat, VideoInfo, pixel_format
from .writer import FFV1Writer, PNGSequenceWriter, VideoWriter, Y4MFileWriter, infer_format, open_writer

__all__ = [
    "PixelFormat", "PIXEL_FORMATS", "pixel_format", "VideoInfo", "Frames",
    "VideoReader", "Y4MVideoReader", "FFmpegVideoReader", "PNGSequenceReader", "open_video", "read_video",
    "choose_pix_fmt", "parse_fps", "DEFAULT_PNG_FPS",
    "VideoWriter", "Y4MFileWriter", "FFV1Writer", "PNGSequenceWriter", "open_writer", "write_video", "infer_format",
]


def read_video(path: "str | os.PathLike[str]", fps: Optional[FpsLike] = None,
               raw: Optional[Tuple[int, int, str]] = None) -> Tuple[VideoInfo, Frames]:
    """Read a whole video into memory (convenient for short clips and tests); ``fps`` and ``raw`` as in
    :func:`open_video`."""
    with open_video(path, fps, raw) as reader:
        return reader.info, reader.read()


def write_video(path: "str | os.PathLike[str]", info: VideoInfo, frames: Union[Frames, Iterable[Frames]],
                fmt: Optional[str] = None) -> int:
    """Write one batch or an iterable of batches atomically; return the number of frames written."""
    batches = [frames] if isinstance(frames, Frames) else frames
    with open_writer(path, info, fmt) as writer:
        for batch in batches:
            writer.write(batch)
    return writer.frames_written
