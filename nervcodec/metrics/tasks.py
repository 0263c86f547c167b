"""Scores of the seed tasks, on PSNR-RGB (ffmpeg's rgb24 conversion, per-frame mean, as everywhere):

* interpolation: seen and unseen frames apart, and the baseline every reader asks for,
  the average of the two nearest seen frames of the input (the nearer one alone past the
  last seen frame);
* inpainting: inside the holes and outside them, against the unmasked original;
* denoising: against a clean reference, next to the noisy input's own score.

A PSNR over a set of pixels (the holes) is the PSNR of those pixels' MSE in each frame,
averaged over frames.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..io.video import Frames
from .psnr import mse_to_psnr, rgb_frame_psnr
from .rgb import frames_to_rgb24

__all__ = ["TaskScores", "score_tasks", "neighbour_average", "mean_psnr_rgb", "masked_rgb_mse"]


@dataclass(frozen=True)
class TaskScores:
    psnr_rgb: float                              # every frame, every pixel
    frames_seen: Optional[int] = None            # interpolation: frames fitted / held out and scored
    frames_unseen: Optional[int] = None
    psnr_rgb_seen: Optional[float] = None
    psnr_rgb_unseen: Optional[float] = None
    psnr_rgb_unseen_neighbours: Optional[float] = None   # baseline: average of the two nearest seen frames
    psnr_rgb_holes: Optional[float] = None       # inpainting: inside the holes / outside them
    psnr_rgb_visible: Optional[float] = None
    psnr_rgb_input: Optional[float] = None       # with a reference: the input itself against it (e.g. noisy)

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _mean(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def mean_psnr_rgb(reference_rgb: np.ndarray, distorted_rgb: np.ndarray) -> float:
    """PSNR-RGB of two (N, H, W, 3) uint8 batches, averaged over frames (the codec convention)."""
    return float(rgb_frame_psnr(reference_rgb, distorted_rgb).mean())


def masked_rgb_mse(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per-frame MSE of (N, H, W, 3) uint8 batches over the pixels where ``where`` (N, H, W) is True."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    w = where[..., None].astype(np.float64)
    return (d * w).reshape(d.shape[0], -1).sum(axis=1) / np.maximum(w.reshape(w.shape[0], -1).sum(axis=1) * 3, 1)


def neighbour_average(frames: Frames, seen: Sequence[int], targets: Sequence[int]) -> Frames:
    """For each target frame, the rounded average of the nearest seen frames before and after it
    (the nearer one alone when it has seen frames on one side only)."""
    seen = sorted(seen)
    out: List[List[np.ndarray]] = [[] for _ in frames.planes]
    for f in targets:
        before = [s for s in seen if s < f]
        after = [s for s in seen if s > f]
        pick = ([before[-1]] if before else []) + ([after[0]] if after else [])
        for k, p in enumerate(frames.planes):
            acc = sum(p[s].astype(np.int64) for s in pick)
            out[k].append(((acc + len(pick) // 2) // len(pick)).astype(p.dtype))
    return Frames(tuple(np.stack(o) for o in out), frames.pix_fmt)


def score_tasks(reference: Frames, decoded: Frames, *, seen: Optional[Sequence[int]] = None,
                unseen: Optional[Sequence[int]] = None, holes: Optional[np.ndarray] = None,
                source: Optional[Frames] = None) -> TaskScores:
    """Score ``decoded`` against ``reference`` (both in the same native format).

    ``seen``/``unseen``: the frames a holdout fitted and held out; the neighbour baseline is
    built from ``source`` (the encoder's input; ``reference`` when None).  ``holes``: (N, H, W)
    bool.  With a ``source`` other than the reference, its own score is reported too.
    """
    ref = frames_to_rgb24(reference)
    dec = frames_to_rgb24(decoded)
    per = rgb_frame_psnr(ref, dec)
    out: Dict[str, object] = {"psnr_rgb": float(per.mean())}
    if unseen is not None and seen is not None:
        out.update(frames_seen=len(seen), frames_unseen=len(unseen), psnr_rgb_seen=_mean(per[list(seen)]),
                   psnr_rgb_unseen=_mean(per[list(unseen)]))
        if unseen:
            base = frames_to_rgb24(neighbour_average(source if source is not None else reference, seen, unseen))
            out["psnr_rgb_unseen_neighbours"] = mean_psnr_rgb(ref[list(unseen)], base)
    if holes is not None:   # over the frames that have such pixels (a frame without holes has no hole score)
        for key, where in (("psnr_rgb_holes", holes), ("psnr_rgb_visible", ~holes)):
            some = where.reshape(where.shape[0], -1).any(axis=1)
            if some.any():
                out[key] = float(mse_to_psnr(masked_rgb_mse(ref[some], dec[some], where[some]), 255.0).mean())
    if source is not None and source is not reference:
        out["psnr_rgb_input"] = mean_psnr_rgb(ref, frames_to_rgb24(source))
    return TaskScores(**out)
