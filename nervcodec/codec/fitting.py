"""Encode stage 2, fit: the planned model fitted to the planned items -> float weights.

Builds the training items (integer targets, times, loss mask, keyframe tiles),
runs :func:`nervcodec.fit.fit` with the --checkpoint saver when asked, and checks
the outcome: a diverged fit raises (from the fitting loop), and a fit that ends
far below the quality its model started from warns.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ConfigError, InterruptedError_, NervCodecWarning
from ..distributed import current
from ..fit import FitData, FitResult, fit
from ..fit.data import DiskFitData, sample_tensor
from ..io.cache import DiskCache, RecordFile
from ..fit.checkpoint import Checkpointer, fit_fingerprint
from ..io.video import Frames, VideoInfo
from ..model import VideoModel, config_to_dict
from ..quant import RateTerm, RateTermConfig
from ..textutil import plural
from .layout import Layout
from ..tasks import MaskSpec
from .plan import EncodePlan, video_holes
from .progress import ProgressBar, note
from .rate import LEARNED_BITS_PER_PARAM
from .tiles import cut_items, cut_luma, keyframe_tiles

__all__ = ["FittedModel", "fit_model", "build_fit_data", "loss_mask", "fit_items", "rate_term", "WORSE_THAN_START_DB"]

# A fit that ends this much below the PSNR of the model it started from has gone wrong
# (for D-NeRV the start is the keyframe cross-fade, which any working fit improves on).
WORSE_THAN_START_DB = 1.0


@dataclass(frozen=True)
class FittedModel:
    """Stage 2's output: the fitted float weights (on the CPU) and how the fit went."""

    state: Dict[str, torch.Tensor]
    params: int
    result: FitResult
    warnings: Tuple[str, ...] = ()
    checkpoint: Optional[Checkpointer] = None   # removed once the file is written
    steps: Optional[Dict[str, np.ndarray]] = None  # learned float16 step per tensor (rate-aware fit)
    estimated_bits: Optional[float] = None      # the rate term's estimate of the coded weights
    peak_rss: Tuple[float, ...] = ()            # peak resident MiB of each process after the fit


def _chroma_shift(fmt) -> Tuple[int, int]:
    return (fmt.log2_chroma_h, fmt.log2_chroma_w) if fmt.has_chroma else (0, 0)


def item_arrays(frames: Sequence[Frames], infos: Sequence[VideoInfo], layout: Layout, items, work_h: int,
                work_w: int, keyframes: Optional[Mapping[Tuple[int, int], np.ndarray]] = None,
                mask: Optional[MaskSpec] = None) -> Dict[str, np.ndarray]:
    """The items' arrays, one row per item: ``y`` (and ``c``) targets cut to the working size,
    (for D-NeRV) ``keyframes`` tiles from the full-resolution decoded keyframes ``(video, frame) ->
    (C, H, W)``, and with a ``mask`` each frame's visible ``pixels``."""
    ys, cs = cut_items(frames, layout, infos, items, work_h, work_w)
    rows = {"y": ys} if cs is None else {"y": ys, "c": cs}
    if keyframes is not None:
        rows["keyframes"] = keyframe_tiles(keyframes, layout, infos, items, work_h, work_w)
    if mask is not None:   # only the videos these items come from
        used = {it.video for it in items}
        vis = [(~video_holes(mask, v)).astype(np.uint8) if vi in used else None for vi, v in enumerate(infos)]
        rows["pixels"] = cut_luma(vis, layout, infos, items, work_h, work_w)
    return rows


def build_fit_data(frames: Sequence[Frames], infos: Sequence[VideoInfo], layout: Layout, items, work_h: int,
                   work_w: int, keyframes: Optional[Dict[Tuple[int, int], np.ndarray]] = None,
                   mask: Optional[MaskSpec] = None) -> FitData:
    """The training items as tensors (:func:`item_arrays`), with their times and loss mask."""
    fmt = infos[0].pix_fmt
    arrays = item_arrays(frames, infos, layout, items, work_h, work_w, keyframes, mask)
    rows = {k: sample_tensor(a) for k, a in arrays.items()}
    return FitData(t=torch.from_numpy(layout.times(infos, items)), y=rows["y"], c=rows.get("c"),
                   mask=loss_mask(layout, infos, items), keyframes=rows.get("keyframes"), max_value=fmt.max_value,
                   chroma_shift=_chroma_shift(fmt), pixels=rows.get("pixels"))


DISK_CHUNK = 32  # items cut and written at a time when the items live in a cache file


def build_disk_fit_data(frames: Sequence[Frames], infos: Sequence[VideoInfo], layout: Layout, items, work_h: int,
                        work_w: int, keyframes: Optional[Mapping[Tuple[int, int], np.ndarray]],
                        mask: Optional[MaskSpec], cache: DiskCache) -> DiskFitData:
    """:func:`build_fit_data` into a cache file, ``DISK_CHUNK`` items at a time: memory holds one chunk,
    and the fit reads its batches back from the file."""
    records = None
    digest = hashlib.sha256()
    for a in range(0, len(items), DISK_CHUNK):
        rows = item_arrays(frames, infos, layout, items[a:a + DISK_CHUNK], work_h, work_w, keyframes, mask)
        if records is None:   # one record per item, laid out as the first chunk's arrays
            records = RecordFile(cache, "items.raw", [(k, v.shape[1:], v.dtype) for k, v in rows.items()])
        for v in rows.values():
            digest.update(np.ascontiguousarray(v).tobytes())
        records.append(rows)
    fmt = infos[0].pix_fmt
    return DiskFitData(records, torch.from_numpy(layout.times(infos, items)), loss_mask(layout, infos, items),
                       fmt.max_value, _chroma_shift(fmt), digest.hexdigest())


def loss_mask(layout: Layout, infos: Sequence[VideoInfo], items) -> torch.Tensor:
    """(M, D): 1 for frames the network must reproduce: real frames, minus substituted keyframes,
    minus the frames a holdout keeps out of the fit."""
    split = layout.split
    return torch.tensor([[float(ok and not (layout.substitute and layout.is_keyframe(infos[it.video], it.video, f))
                                and (split is None or split.seen(f)))
                          for f, ok in zip(it.frames, it.valid)] for it in items])


def fit_items(plan: EncodePlan) -> list:
    """The items the fit trains on: all of them, or under a holdout those with a frame in the loss
    (NeRV's held-out frames are items of their own and would only cost time)."""
    items = plan.layout.items(plan.infos)
    if plan.layout.split is None:
        return items
    rows = loss_mask(plan.layout, plan.infos, items)
    return [it for it, keep in zip(items, rows.sum(dim=1) > 0) if keep]


def _initial_model(plan: EncodePlan) -> VideoModel:
    """The planned network with its seeded initial weights."""
    torch.manual_seed(plan.cfg.seed)
    return plan.spec.cls(plan.config)


def rate_term(plan: EncodePlan, model: VideoModel) -> Optional[RateTerm]:
    """The rate term of a rate-aware fit (None with --quant-bits): lambda fixed by --lambda, or
    controlled to meet the planned weights budget (--bpp) or LEARNED_BITS_PER_PARAM (--params)."""
    if plan.cfg.quant_bits is not None:
        return None
    target = (8.0 * plan.weight_budget if plan.weight_budget is not None
              else LEARNED_BITS_PER_PARAM * model.num_params())
    return RateTerm(RateTermConfig(pixels=plan.pixels, target_bits=target, lam=plan.cfg.lam,
                                   start=plan.spec.rate_start, noise_until=plan.spec.noise_until,
                                   check_coded=plan.spec.check_coded), model)


def _checkpointer(plan: EncodePlan, model: VideoModel, data: FitData, progress: bool,
                  rate: Optional[RateTerm]) -> Optional[Checkpointer]:
    """The --checkpoint saver (None without one); refuses a checkpoint path that is an input or the output."""
    cfg = plan.cfg
    if not cfg.checkpoint:
        return None
    cp = Path(cfg.checkpoint)
    for p in [*plan.inputs, plan.output]:
        if cp.resolve() == Path(p).resolve():
            raise ConfigError(f"--checkpoint {cp} would overwrite {p}; choose another name")
    described = {**config_to_dict(model.config), "rate_term": dataclasses.asdict(rate.cfg) if rate else None}
    ckpt = Checkpointer(cp, fit_fingerprint(described, data, plan.fit), cfg.checkpoint_seconds)
    if cfg.resume and not cp.exists():
        note(progress, f"no checkpoint at {cp} yet: starting from the beginning")
    return ckpt


def _resume_state(ckpt: Optional[Checkpointer], resume: bool) -> Optional[Dict]:
    """The checkpoint to continue from: read by rank 0 alone and sent to the others under torchrun
    (on several machines only rank 0's holds the file, and every rank must take the same branch)."""
    if ckpt is None or not resume:
        return None
    d = current()
    if d is None:
        return ckpt.load()
    return d.broadcast_object(ckpt.load() if d.main else None)


def _quality_warnings(plan: EncodePlan, res: FitResult) -> Tuple[str, ...]:
    if not (math.isfinite(res.start_psnr) and res.final_psnr < res.start_psnr - WORSE_THAN_START_DB):
        return ()
    start = "the keyframe cross-fade it started from" if plan.keyframes is not None else "its initial model"
    # two causes seen: a learning rate too high for the model, and a fit too short to recover from the drop
    # that quantizing the weights causes where the rate term starts (a 20-step latent-grid-kf test fit)
    msg = (f"the fit ended at {res.final_psnr:.2f} dB, below {start} ({res.start_psnr:.2f} dB): the learning "
           f"rate may be too high (--lr {plan.fit.lr:g}) or the fit too short ({res.steps} steps; --preset, --steps)")
    warnings.warn(msg, NervCodecWarning, stacklevel=3)
    return (msg,)


def fit_model(plan: EncodePlan, progress: bool = False) -> FittedModel:
    """Stage 2: fit the planned model; Ctrl-C gives :class:`InterruptedError_` (after saving a checkpoint)."""
    model = _initial_model(plan)
    n_params = model.num_params()
    build = (build_fit_data if plan.cache is None
             else lambda *a: build_disk_fit_data(*a, cache=plan.cache))  # noqa: E731
    data = build(plan.seen_frames, plan.infos, plan.layout, fit_items(plan), int(plan.config.height),
                 int(plan.config.width), plan.keyframes.decoded if plan.keyframes is not None else None, plan.mask)
    per_epoch = -(-data.num_items // max(1, min(plan.fit.batch, data.num_items)))
    steps = plan.fit.total_steps(per_epoch)
    if plan.clip_len_scores:
        note(progress, f"keyframes every {plan.layout.clip_len} frames, chosen by the keyframes' cross-fade ("
                       + ", ".join(f"{d}: {s:.2f} dB" for d, s in plan.clip_len_scores) + "; --clip-len fixes it)")
    for vi, cuts in enumerate(plan.layout.cuts):
        if cuts:
            name = f" of {plan.infos[vi].name}" if len(plan.infos) > 1 else ""
            note(progress, f"scene cuts{name} at frame{'s' if len(cuts) > 1 else ''} {', '.join(map(str, cuts))}: "
                           f"clips and keyframes restart there (--no-scenecut: keyframes every {plan.layout.clip_len})")
    note(progress, f"fitting {plan.spec.name} with {n_params} parameters to {plural(plan.num_frames, 'frame')} "
                   f"on {plan.device} ({plan.cfg.effort}: {plural(steps, 'optimizer step')}, "
                   f"{steps / per_epoch:.3g} epochs; the bar shows the time left)")
    rate = rate_term(plan, model)
    ckpt = _checkpointer(plan, model, data, progress, rate)
    try:
        with ProgressBar(progress, f"fitting ({plan.cfg.effort})",
                         rate_from=rate.start_step(steps) if rate is not None else None) as bar:
            res = fit(model, data, plan.fit, plan.device, progress=bar, checkpoint=ckpt,
                      resume=_resume_state(ckpt, plan.cfg.resume), rate=rate)
    except KeyboardInterrupt:
        saved = (f"; fitting state saved in {plan.cfg.checkpoint} (continue with --resume)"
                 if ckpt is not None and ckpt.saved_step is not None else "")
        raise InterruptedError_(f"interrupted while fitting; nothing was written{saved}") from None
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    steps = estimate = None
    if rate is not None and rate.active:
        steps, estimate = rate.steps(), rate.estimate_bits(model)
    return FittedModel(state, n_params, res, _quality_warnings(plan, res), ckpt, steps, estimate)
