"""Decoding a written file from disk and measuring it against its sources (``encode --verify``)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

from ..errors import ConfigError, InputError
from ..io import read_video
from ..metrics import measure_pair
from ..metrics.tasks import TaskScores, score_tasks
from ..tasks import parse_holdout, parse_mask
from .decode import decode

__all__ = ["VerifyResult", "verify"]


@dataclass(frozen=True)
class VerifyResult:
    """Quality of the decoded file, pooled over all its videos (frame-weighted means), against the
    inputs or against ``reference``; with a holdout, a mask or a reference, the task scores too."""

    psnr_rgb: float
    psnr_y: float
    psnr_yuv: float
    frames: int
    decode_seconds: float
    reference: Optional[str] = None
    tasks: Optional[TaskScores] = None

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["tasks"] = self.tasks.to_dict() if self.tasks is not None else None
        return d


def verify(path: str | os.PathLike, inputs: Sequence[str | os.PathLike], device: str = "auto", *,
           reference: Optional[str] = None, holdout: Optional[str] = None,
           mask: Optional[str] = None) -> VerifyResult:
    """Decode ``path`` (every video, in a temporary folder) and measure each against its source as
    ``bench`` does: PSNR-RGB through ffmpeg's rgb24 conversion, PSNR-Y and PSNR-YUV on the native planes.

    ``reference`` (a clean clip, for denoising) replaces the input as what is measured against;
    ``holdout`` and ``mask`` (the encode's) add the seen/unseen and hole scores."""
    tasks = reference is not None or holdout is not None or mask is not None
    if tasks and len(inputs) != 1:
        raise ConfigError("--reference, --holdout and --mask are scored on a single input video")
    with tempfile.TemporaryDirectory(prefix="nervcodec-verify-") as tmp:
        res = decode(path, tmp + os.sep, device=device)  # a folder: one y4m per video, collection or not
        refs = [reference] if reference is not None else list(inputs)
        results = [measure_pair(src, dec) for src, dec in zip(refs, res.outputs)]
        scores = _task_scores(inputs[0], res.outputs[0], reference, holdout, mask) if tasks else None
    frames = sum(r["frames"] for r in results)
    pooled = {k: sum(r[k] * r["frames"] for r in results) / frames for k in ("psnr_rgb", "psnr_y", "psnr_yuv")}
    return VerifyResult(frames=frames, decode_seconds=res.seconds, reference=reference, tasks=scores, **pooled)


def _task_scores(source_path, decoded_path: str, reference: Optional[str], holdout: Optional[str],
                 mask: Optional[str]) -> TaskScores:
    from .plan import video_holes
    info, source = read_video(source_path)
    _, decoded = read_video(decoded_path)
    ref = source
    if reference is not None:
        rinfo, ref = read_video(reference)
        if (rinfo.width, rinfo.height, rinfo.pix_fmt, rinfo.num_frames) != \
                (info.width, info.height, info.pix_fmt, info.num_frames):
            raise InputError(f"the reference {reference} ({rinfo.width}x{rinfo.height} {rinfo.pix_fmt.name}, "
                             f"{rinfo.num_frames} frames) does not match the input ({info.width}x{info.height} "
                             f"{info.pix_fmt.name}, {info.num_frames} frames)")
    split = parse_holdout(holdout) if holdout is not None else None
    n = info.num_frames
    return score_tasks(ref, decoded, seen=split.seen_frames(n) if split else None,
                       unseen=split.unseen_frames(n) if split else None,
                       holes=video_holes(parse_mask(mask), info) if mask is not None else None,
                       source=source if reference is not None or split is not None else None)
