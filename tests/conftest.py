"""Shared fixtures: tiny synthetic clips made in the test (no external data)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from nervcodec.io import write_video
from nervcodec.io.video import Frames, VideoInfo, pixel_format

torch.set_num_threads(min(2, torch.get_num_threads()))


def make_clip(width: int = 32, height: int = 24, frames: int = 6, pix_fmt: str = "yuv420p", seed: int = 0,
              name: str = "clip") -> tuple[VideoInfo, Frames]:
    """A smooth moving pattern plus a little noise: learnable, but not constant."""
    fmt = pixel_format(pix_fmt)
    rng = np.random.default_rng(seed)
    planes = []
    for k, (h, w) in enumerate(fmt.plane_shapes(width, height)):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        t = np.arange(frames, dtype=np.float64)[:, None, None]
        base = 0.5 + 0.3 * np.sin(0.35 * xx / max(w / width, 1e-9) / 1.5 + 0.25 * t + k) * \
            np.cos(0.3 * yy / max(h / height, 1e-9) / 1.5 - 0.15 * t)
        base = base + 0.02 * rng.standard_normal((frames, h, w))
        planes.append(np.clip(np.rint(base * fmt.max_value), 0, fmt.max_value).astype(fmt.dtype))
    info = VideoInfo(width, height, fmt, Fraction(30000, 1001), frames, name=name)
    return info, Frames(tuple(planes), fmt)


@pytest.fixture
def clip_file(tmp_path: Path):
    """Factory: write a synthetic clip as y4m and return (path, info, frames)."""
    def _make(name: str = "clip", **kw):
        info, fr = make_clip(name=name, **kw)
        path = tmp_path / f"{name}.y4m"
        write_video(path, info, fr)
        return path, info, fr
    return _make
