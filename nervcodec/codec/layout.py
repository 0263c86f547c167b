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

With scene cuts (``cuts``, found by :mod:`.scenecut`) each scene [s, e) of a
video is laid out the same way on its own: clips start at s, s + D, ... < e,
frames past the scene's end are clamped to e - 1 and masked, and the keyframes
are the clip starts and e - 1.  No clip, and no keyframe blend, spans a cut.

With a holdout (temporal interpolation, ``--holdout``) the held-out frames never
become keyframes: the clip starts cD must be fitted frames (the encoder checks),
and the last keyframe is the last fitted frame instead of N - 1.  Scene cuts and
a holdout are not combined.
"""
from __future__ import annotations

import bisect
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
class Scene:
    """Frames [start, end) of a video laid out on their own; ``last`` is their last keyframe (end - 1, or
    under a holdout the video's last fitted frame); their clips are numbered from ``first_clip``."""
    start: int
    end: int
    last: int
    first_clip: int


@dataclass(frozen=True)
class Layout:
    clip_len: int
    patch_h: int
    patch_w: int
    time: str            # "global": t = frame / total over the collection (NeRV); "video": t = f / (N - 1) per video
    substitute: bool = False  # keyframe positions show the decoded keyframe itself, not the network's output
    holdout: Optional[str] = None  # frames held out of the fit (temporal interpolation), e.g. "every:2"
    cuts: Tuple[Tuple[int, ...], ...] = ()  # per video, the first frames of its scenes after the first; () = none

    def to_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"clip_len": self.clip_len, "patch": [self.patch_h, self.patch_w], "time": self.time,
                                "substitute": self.substitute}
        if self.holdout is not None:
            d["holdout"] = self.holdout
        if any(self.cuts):
            d["cuts"] = [list(c) for c in self.cuts]
        return d

    def scenes(self, v: VideoInfo, vi: int) -> List[Scene]:
        """The scenes of video ``vi`` in order: the whole video without cuts."""
        bounds = [0, *(self.cuts[vi] if vi < len(self.cuts) else ()), v.num_frames]
        out, clip = [], 0
        for s, e in zip(bounds[:-1], bounds[1:]):
            out.append(Scene(s, e, e - 1 if e < v.num_frames else self.last_key(v), clip))
            clip += -(-(e - s) // self.clip_len)
        return out

    @staticmethod
    def _scene_of(scenes: List[Scene], clip: int) -> Scene:
        return scenes[bisect.bisect_right([sc.first_clip for sc in scenes], clip) - 1]

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
            cuts = d.get("cuts", [])
            assert isinstance(cuts, list) and all(isinstance(c, list) for c in cuts)
            assert all(isinstance(f, int) and not isinstance(f, bool) for c in cuts for f in c)
            cuts = tuple(tuple(c) for c in cuts)
        except (AssertionError, KeyError, TypeError, ValueError):
            raise FormatError("file header has an invalid layout") from None
        if not (1 <= clip <= 64 and 1 <= ph <= 16384 and 1 <= pw <= 16384 and time in ("global", "video")):
            raise FormatError("file header has an out-of-range layout")
        if holdout is not None:
            try:
                holdout = parse_holdout(holdout).spec
            except ConfigError:
                raise FormatError(f"file header has an invalid holdout {holdout!r}") from None
        if cuts and (clip < 2 or holdout is not None or
                     any(list(c) != sorted(set(c)) or (c and c[0] < 1) for c in cuts)):
            raise FormatError("file header has invalid scene cuts")
        return Layout(clip, ph, pw, time, substitute, holdout, cuts)

    def check_videos(self, videos: Sequence[VideoInfo]) -> None:
        """The scene cuts fit the videos (one list per video, every cut inside it)."""
        if self.cuts and (len(self.cuts) != len(videos) or
                          any(c and c[-1] >= v.num_frames for c, v in zip(self.cuts, videos))):
            raise FormatError("the file's scene cuts do not match its videos")

    # -- geometry ---------------------------------------------------------
    def patch_grid(self, v: VideoInfo) -> Tuple[int, int]:
        return -(-v.height // self.patch_h), -(-v.width // self.patch_w)

    def patch_origin(self, v: VideoInfo, patch: int) -> Tuple[int, int]:
        _, cols = self.patch_grid(v)
        return (patch // cols) * self.patch_h, (patch % cols) * self.patch_w

    def num_clips(self, v: VideoInfo, vi: int) -> int:
        last = self.scenes(v, vi)[-1]
        return last.first_clip + -(-(last.end - last.start) // self.clip_len)

    def keyframe_indices(self, v: VideoInfo, vi: int) -> List[int]:
        """Frames of video ``vi`` stored as keyframes (empty for clip length 1)."""
        if self.clip_len == 1:
            return []
        return sorted({f for sc in self.scenes(v, vi) for f in (*range(sc.start, sc.end, self.clip_len), sc.last)})

    def num_keyframes(self, v: VideoInfo, vi: int) -> int:
        """len(keyframe_indices(v, vi)), computed without building the list."""
        if self.clip_len == 1:
            return 0
        return sum(-(-(sc.end - sc.start) // self.clip_len) + (1 if (sc.last - sc.start) % self.clip_len else 0)
                   for sc in self.scenes(v, vi))

    def is_keyframe(self, v: VideoInfo, vi: int, frame: int) -> bool:
        if self.clip_len == 1:
            return False
        scenes = self.scenes(v, vi)
        sc = scenes[bisect.bisect_right([x.start for x in scenes], frame) - 1]
        return (frame - sc.start) % self.clip_len == 0 or frame == sc.last

    def clip_start(self, v: VideoInfo, vi: int, clip: int) -> int:
        sc = self._scene_of(self.scenes(v, vi), clip)
        return sc.start + (clip - sc.first_clip) * self.clip_len

    def clip_keyframes(self, v: VideoInfo, vi: int, clip: int) -> Tuple[int, int]:
        sc = self._scene_of(self.scenes(v, vi), clip)
        start = sc.start + (clip - sc.first_clip) * self.clip_len
        return start, max(start, min(start + self.clip_len, sc.last))

    def clip_range(self, v: VideoInfo, vi: int, frames: Tuple[int, int]) -> Tuple[int, int]:
        """The clips [first, end) of video ``vi`` that hold a frame of [a, b)."""
        scenes = self.scenes(v, vi)
        starts = [sc.start for sc in scenes]

        def clip_of(f: int) -> int:
            sc = scenes[bisect.bisect_right(starts, f) - 1]
            return sc.first_clip + (f - sc.start) // self.clip_len

        a, b = frames
        return clip_of(max(a, 0)), clip_of(min(b, v.num_frames) - 1) + 1

    def items(self, videos: Sequence[VideoInfo], frames: Tuple[int, int] | None = None,
              video: int | None = None) -> List[Item]:
        """Items in decoding order (video, clip, patch), optionally only those covering ``frames`` [a, b)."""
        out = []
        for vi, v in enumerate(videos):
            if video is not None and vi != video:
                continue
            rows, cols = self.patch_grid(v)
            # only the clips that overlap [a, b), found without a scan
            first, end = self.clip_range(v, vi, frames) if frames is not None else (0, self.num_clips(v, vi))
            scenes = self.scenes(v, vi)
            for c in range(first, end):
                sc = self._scene_of(scenes, c)
                start = sc.start + (c - sc.first_clip) * self.clip_len
                idx = tuple(min(start + j, sc.end - 1) for j in range(self.clip_len))
                valid = tuple(start + j < sc.end for j in range(self.clip_len))
                kf = (start, max(start, min(start + self.clip_len, sc.last)))
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
                substitute: bool = False, holdout: Optional[Holdout] = None,
                cuts: Sequence[Sequence[int]] = ()) -> Layout:
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
    cut_list = tuple(tuple(int(f) for f in c) for c in cuts) if any(cuts) and clip_len > 1 else ()
    if cut_list and holdout is not None:
        raise ConfigError("scene cuts and --holdout are not combined")
    layout = Layout(clip_len, ph, pw, time, substitute, holdout.spec if holdout is not None else None, cut_list)
    layout.check_videos(videos)
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
