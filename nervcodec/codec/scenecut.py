"""Scene cuts: where a keyframe-conditioned model must not blend across frames.

D-NeRV (and the keyframe-conditioned latent grids) render each frame of a clip
from the clip's two keyframes, starting from their cross-fade.  A clip that
spans a cut starts from a blend of two different scenes, which the network can
only partly undo (bikes.mp4, 250 frames with 5 cuts, D-NeRV at 0.04 bpp and the
default effort: 25.20 dB PSNR-RGB with clips across the cuts, 26.69 dB with
clips restarted at them; docs/benchmarks.md, "Scene cuts").  So, like x264's ``--scenecut``, the
encoder looks for cuts first and the layout starts a new run of clips at each.

A cut is a frame whose mean absolute luma difference from the frame before
(on the 8-bit scale) is at least ``CUT_MIN_DIFF`` and at least ``CUT_RATIO``
times the differences on either side of it.  The ratio keeps fast motion,
pans and dissolves (every difference large) and flashes (two large differences
in a row) from counting as cuts; the floor keeps noise in still scenes from
counting.  Cuts less than ``MIN_SCENE`` frames after the previous one, or
before the end, are dropped.  On the dev clips: bikes.mp4's five cuts (mean
differences 72, 46, 45, 52 and 51; no other frame above 18.3, the fast motion
before the second cut included) are found; people_qcif_48f and carphone_pristine
(largest differences 5.4 and 6.5) have none.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ..io.video import Frames, VideoInfo

__all__ = ["find_cuts", "frame_differences", "CUT_MIN_DIFF", "CUT_RATIO", "MIN_SCENE"]

CUT_MIN_DIFF = 20.0   # mean |dY| of 8-bit luma, 0..255
CUT_RATIO = 2.0       # times the larger of the neighbouring differences
MIN_SCENE = 2         # frames; a shorter scene merges into the one before it
_CHUNK = 32           # frames read at a time (inputs may be on disk)


def frame_differences(frames: Frames, info: VideoInfo) -> np.ndarray:
    """(N - 1,) mean absolute difference of consecutive luma planes, on the 8-bit scale."""
    y, n = frames.planes[0], info.num_frames
    out = np.zeros(max(n - 1, 0), np.float64)
    for a in range(0, n - 1, _CHUNK):   # chunks that share their last frame with the next
        block = np.asarray(y[a:min(a + _CHUNK + 1, n)], np.float32)
        out[a:a + len(block) - 1] = np.abs(np.diff(block, axis=0)).mean(axis=(1, 2))
    return out * (255.0 / info.pix_fmt.max_value)


def cuts_from_differences(diff: Sequence[float], min_diff: float = CUT_MIN_DIFF, ratio: float = CUT_RATIO,
                          min_scene: int = MIN_SCENE) -> Tuple[int, ...]:
    """Cut frames from ``diff[i]`` = the change from frame i to frame i + 1 (see the module docstring)."""
    d = np.asarray(diff, np.float64)
    n = len(d) + 1
    cuts: List[int] = []
    for i, x in enumerate(d):
        before = d[i - 1] if i > 0 else 0.0
        after = d[i + 1] if i + 1 < len(d) else 0.0
        if x >= min_diff and x >= ratio * max(before, after):
            f = i + 1
            if f - (cuts[-1] if cuts else 0) >= min_scene and n - f >= min_scene:
                cuts.append(f)
    return tuple(cuts)


def find_cuts(frames: Frames, info: VideoInfo) -> Tuple[int, ...]:
    """The scene cuts of one video: the first frame of every scene after the first."""
    if info.num_frames < 2 * MIN_SCENE:
        return ()
    return cuts_from_differences(frame_differences(frames, info))
