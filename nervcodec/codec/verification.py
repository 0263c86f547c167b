"""Decoding a written file from disk and measuring it against its sources (``encode --verify``)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..io import read_video
from ..metrics import measure_pair
from ..io.video import Frames
from ..metrics.rgb import frame_rgb24
from ..metrics.tasks import TaskScores, neighbour_average, score_tasks
from ..tasks import Holdout, parse_holdout, parse_mask
from ..tasks.figures import middle_frame, write_figure
from .decode import decode

__all__ = ["VerifyResult", "verify", "task_scores", "task_figure"]


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
           mask: Optional[str] = None, figure: Optional[str] = None) -> VerifyResult:
    """Decode ``path`` (every video, in a temporary folder) and measure each against its source as
    ``bench`` does: PSNR-RGB through ffmpeg's rgb24 conversion, PSNR-Y and PSNR-YUV on the native planes.

    ``reference`` (a clean clip, for denoising) replaces the input as what is measured against;
    ``holdout`` and ``mask`` (the encode's) add the seen/unseen and hole scores; ``figure``
    writes the task's comparison PNG (:func:`task_figure`)."""
    tasks = reference is not None or holdout is not None or mask is not None or figure is not None
    if tasks and len(inputs) != 1:
        raise ConfigError("--reference, --holdout, --mask and --figure are scored on a single input video")
    with tempfile.TemporaryDirectory(prefix="nervcodec-verify-") as tmp:
        # a folder: one y4m per video, collection or not; this process decodes all of them (under torchrun
        # only rank 0 verifies, while the others wait for its result)
        res = decode(path, tmp + os.sep, device=device, split=False)
        refs = [reference] if reference is not None else list(inputs)
        results = [measure_pair(src, dec) for src, dec in zip(refs, res.outputs)]
        scores = task_scores(inputs[0], res.outputs[0], reference, holdout, mask, figure) if tasks else None
    frames = sum(r["frames"] for r in results)
    pooled = {k: sum(r[k] * r["frames"] for r in results) / frames for k in ("psnr_rgb", "psnr_y", "psnr_yuv")}
    return VerifyResult(frames=frames, decode_seconds=res.seconds, reference=reference, tasks=scores, **pooled)


def task_scores(source_path, decoded_path: str, reference: Optional[str], holdout: Optional[str],
                 mask: Optional[str], figure: Optional[str] = None) -> TaskScores:
    from .plan import check_reference, video_holes
    info, source = read_video(source_path)
    _, decoded = read_video(decoded_path)
    ref = source
    if reference is not None:
        check_reference(reference, [info])
        ref = read_video(reference)[1]
    split = parse_holdout(holdout) if holdout is not None else None
    n = info.num_frames
    holes = video_holes(parse_mask(mask), info) if mask is not None else None
    if figure is not None:
        task_figure(figure, ref, source, decoded, split, holes, reference is not None)
    return score_tasks(ref, decoded, seen=split.seen_frames(n) if split else None,
                       unseen=split.unseen_frames(n) if split else None, holes=holes,
                       source=source if reference is not None or split is not None else None)


def task_figure(path: str, ref: Frames, source: Frames, decoded: Frames, split: Optional[Holdout],
                holes: Optional[np.ndarray], denoising: bool) -> None:
    """Reference, what the encoder was given, and the decoded output, side by side (one frame):
    the first held-out frame and its neighbour average; the middle frame with its holes shown
    black; the middle frame of the noisy input against the clean one."""
    n = ref.num_frames
    f = split.unseen_frames(n)[0] if split is not None else middle_frame(n)
    panels = [(frame_rgb24(ref, f), "clean reference" if denoising else f"source frame {f}")]
    if split is not None:
        avg = neighbour_average(source, split.seen_frames(n), [f])
        panels.append((frame_rgb24(avg, 0), "neighbour average"))
    elif holes is not None:
        masked = frame_rgb24(source, f).copy()
        masked[holes[f]] = 0
        panels.append((masked, "input, holes black"))
    elif denoising:
        panels.append((frame_rgb24(source, f), "noisy input"))
    panels.append((frame_rgb24(decoded, f), "nervcodec"))
    write_figure(path, [p[0] for p in panels], [p[1] for p in panels])
