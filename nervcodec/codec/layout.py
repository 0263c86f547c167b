"""How a video (collection) is cut into the items a model is fitted on.

An item is one patch of one clip of one video.  NeRV uses clips of one frame
and a single patch (the whole padded frame); D-NeRV uses clips of D frames with
keyframes at the clip boundaries, and patches for large frames or collections
of different sizes.  The layout is stored in the file, so the decoder cuts
exactly as the encoder did.

Keyframes of video v with N frames and clip length D are the frames
0, D, 2D, ... and N - 1; clip c covers frames cD .. cD + D - 1 (frames past
the end are clamped to the last frame and masked out of the loss) and is
conditioned on keyframes cD and min((c + 1) D, N - 1).

With a holdout (temporal interpolation, ``--holdout``) the held-out frames never
become keyframes: the clip starts cD must be fitted frames (the encoder checks),
and the last keyframe is the last fitted frame instead of N - 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, FormatError
from ..io.video import PixelFormat, VideoInfo
from ..tasks.holdout import Holdout, parse_holdout

__all__ = ["Layout", "Item", "plan_layout", "MAX_PATCH_AREA"]

# Largest patch (pixels) fitted as one item; bigger frames are cut into patches.
# 256 x 320 is the D-NeRV reference's patch for 1080p.
MAX_PATCH_AREA = 256 * 320


@dataclass(frozen=True)
class Item:
    video: int
    clip: int
    patch: int           # row-major index in the video's patch grid
    frames: Tuple[int, ...]   # D frame indices (clamped)
    valid: Tuple[bool, ...]   # which of them are real
    keyframes: Tuple[int, int]


@dataclass(frozen=True)
class Layout:
    clip_len: int
    patch_h: int
    patch_w: int
    time: str            # "global": t = frame / total over the collection (NeRV); "video": t = f / (N - 1) per video
    substitute: bool = False  # keyframe positions show the decoded keyframe itself, not the network's output
    holdout: Optional[str] = None  # frames held out of the fit (temporal interpolation), e.g. "every:2"

    def to_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"clip_len": self.clip_len, "patch": [self.patch_h, self.patch_w], "time": self.time,
                                "substitute": self.substitute}
        if self.holdout is not None:
            d["holdout"] = self.holdout
        return d

    @cached_property
    def split(self) -> Optional[Holdout]:
        return parse_holdout(self.holdout) if self.holdout is not None else None

    def last_key(self, v: VideoInfo) -> int:
        """The last keyframe of video v: its last frame, or its last fitted one under a holdout."""
        return self.split.last_seen(v.num_frames) if self.split is not None else v.num_frames - 1

    @staticmethod
    def from_dict(d: object) -> "Layout":
        try:
            assert isinstance(d, dict)
            clip, (ph, pw), time = d["clip_len"], d["patch"], d["time"]
            # integers and a string exactly: int() would also take 2.5, "8", True or fail on infinity
            assert all(isinstance(x, int) and not isinstance(x, bool) for x in (clip, ph, pw))
            assert isinstance(time, str)
            substitute = d.get("substitute", False)
            assert isinstance(substitute, bool)
            holdout = d.get("holdout")
            assert holdout is None or (isinstance(holdout, str) and len(holdout) <= 32)
        except (AssertionError, KeyError, TypeError, ValueError):
            raise FormatError("file header has an invalid layout") from None
        if not (1 <= clip <= 64 and 1 <= ph <= 16384 and 1 <= pw <= 16384 and time in ("global", "video")):
            raise FormatError("file header has an out-of-range layout")
        if holdout is not None:
            try:
                holdout = parse_holdout(holdout).spec
            except ConfigError:
                raise FormatError(f"file header has an invalid holdout {holdout!r}") from None
        return Layout(clip, ph, pw, time, substitute, holdout)

    # -- geometry ---------------------------------------------------------
    def patch_grid(self, v: VideoInfo) -> Tuple[int, int]:
        return -(-v.height // self.patch_h), -(-v.width // self.patch_w)

    def patch_origin(self, v: VideoInfo, patch: int) -> Tuple[int, int]:
        _, cols = self.patch_grid(v)
        return (patch // cols) * self.patch_h, (patch % cols) * self.patch_w

    def num_clips(self, v: VideoInfo) -> int:
        return -(-v.num_frames // self.clip_len)

    def keyframe_indices(self, v: VideoInfo) -> List[int]:
        """Frames of video v stored as keyframes (empty for clip length 1)."""
        if self.clip_len == 1:
            return []
        return sorted(set(range(0, v.num_frames, self.clip_len)) | {self.last_key(v)})

    def num_keyframes(self, v: VideoInfo) -> int:
        """len(keyframe_indices(v)), computed without building the list."""
        if self.clip_len == 1:
            return 0
        return -(-v.num_frames // self.clip_len) + (1 if self.last_key(v) % self.clip_len else 0)

    def is_keyframe(self, v: VideoInfo, frame: int) -> bool:
        return self.clip_len > 1 and (frame % self.clip_len == 0 or frame == self.last_key(v))

    def clip_keyframes(self, v: VideoInfo, clip: int) -> Tuple[int, int]:
        start = clip * self.clip_len
        return start, max(start, min(start + self.clip_len, self.last_key(v)))

    def items(self, videos: Sequence[VideoInfo], frames: Tuple[int, int] | None = None,
              video: int | None = None) -> List[Item]:
        """Items in decoding order (video, clip, patch), optionally only those covering ``frames`` [a, b)."""
        out = []
        for vi, v in enumerate(videos):
            if video is not None and vi != video:
                continue
            rows, cols = self.patch_grid(v)
            first, end = 0, self.num_clips(v)
            if frames is not None:  # only the clips that overlap [a, b), found without a scan
                first, end = max(first, frames[0] // self.clip_len), min(end, -(-frames[1] // self.clip_len))
            for c in range(first, end):
                start = c * self.clip_len
                idx = tuple(min(start + j, v.num_frames - 1) for j in range(self.clip_len))
                valid = tuple(start + j < v.num_frames for j in range(self.clip_len))
                kf = self.clip_keyframes(v, c)
                for p in range(rows * cols):
                    out.append(Item(vi, c, p, idx, valid, kf))
        return out

    def times(self, videos: Sequence[VideoInfo], items: Sequence[Item], phase: float = 0.0) -> np.ndarray:
        """(M, D) float32 time of each frame of each item (``phase`` of a frame interval later)."""
        offsets = np.cumsum([0] + [v.num_frames for v in videos])
        total = int(offsets[-1])
        t = np.zeros((len(items), self.clip_len), np.float64)
        for i, it in enumerate(items):
            f = np.asarray(it.frames, np.float64) + phase
            if self.time == "global":
                t[i] = (f + offsets[it.video]) / total
            else:
                n = videos[it.video].num_frames
                t[i] = f / max(n - 1, 1)
        return t.astype(np.float32)


def _even_up(x: int, shift: int) -> int:
    m = 1 << shift
    return -(-x // m) * m


def plan_layout(videos: Sequence[VideoInfo], clip_len: int, time: str, allow_patches: bool,
                substitute: bool = False, holdout: Optional[Holdout] = None) -> Layout:
    """Patch size: the whole (largest) frame when it is small enough, else a near-even split into
    patches of at most MAX_PATCH_AREA pixels.  Patch sides are multiples of the chroma subsampling
    so patches cut chroma planes cleanly."""
    fmt: PixelFormat = videos[0].pix_fmt
    h = max(v.height for v in videos)
    w = max(v.width for v in videos)
    if h * w <= MAX_PATCH_AREA or not allow_patches:
        ph, pw = h, w
    else:
        best = None
        for rows in range(1, 65):
            for cols in range(1, 65):
                ph, pw = -(-h // rows), -(-w // cols)
                if ph * pw > MAX_PATCH_AREA:
                    continue
                waste = rows * cols * ph * pw - h * w
                key = (rows * cols, waste, max(ph, pw) / min(ph, pw))  # fewest, least padding, squarest
                if best is None or key < best[0]:
                    best = (key, (ph, pw))
                break
        if best is None:
            raise ConfigError(f"frame size {w}x{h} is too large to cut into patches")
        ph, pw = best[1]
    ph = _even_up(ph, fmt.log2_chroma_h if fmt.has_chroma else 0)
    pw = _even_up(pw, fmt.log2_chroma_w if fmt.has_chroma else 0)
    layout = Layout(clip_len, ph, pw, time, substitute, holdout.spec if holdout is not None else None)
    if holdout is not None:
        _check_holdout(layout, holdout, videos)
    return layout


def _check_holdout(layout: Layout, holdout: Holdout, videos: Sequence[VideoInfo]) -> None:
    """Every clip start is a keyframe, so it must be a fitted frame; and something must be fitted."""
    for v in videos:
        if layout.clip_len > 1:
            bad = next((f for f in range(0, v.num_frames, layout.clip_len) if not holdout.seen(f)), None)
            if bad is not None:
                raise ConfigError(f"--holdout {holdout.spec} holds out frame {bad} of {v.name or 'the video'}, "
                                  f"which is a keyframe with --clip-len {layout.clip_len}; use a clip length "
                                  f"that is a multiple of {holdout.block}")
        if v.num_frames < 2 or not holdout.unseen_frames(v.num_frames):
            raise ConfigError(f"--holdout {holdout.spec} holds out no frame of {v.name or 'the video'} "
                              f"({v.num_frames} frames)")
