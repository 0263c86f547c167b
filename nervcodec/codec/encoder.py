"""encode: video file(s) -> a .nerv file whose size on disk is the rate.

Four typed stages, each a function of frozen inputs that a test can call alone:

    plan     (inputs, layout, keyframes, model config, byte budget)   codec/plan.py
    fit      -> float weights                                          codec/fitting.py
    code     -> integer symbols -> sections -> the file's bytes        codec/coding.py
    write    -> the file on disk (atomic); its size is the rate        here

and, with ``verify``, a decode of the written file measured against the sources.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from ..device import resolve_device
from ..errors import InterruptedError_, NervCodecError
from ..distributed import init_from_env
from ..fsutil import atomic_write_bytes
from .coding import CodedFile, code
from .config import EncodeConfig
from .fitting import FittedModel, fit_model
from .plan import EncodePlan, plan
from .verification import VerifyResult, verify

__all__ = ["EncodeResult", "encode", "write"]


@dataclass(frozen=True)
class EncodeResult:
    path: str
    bytes: int
    bpp: float                 # from the file's size on disk
    psnr: float                # PSNR-YUV (6:1:1, per-frame mean) of what the decoder will produce
    psnr_y: float
    frames: int
    params: int
    seconds: float
    fit_seconds: float
    model: str
    weights_bytes: int
    keyframe_bytes: int
    header_bytes: int
    device: str
    epochs: float                        # passes over the training items the fit made
    videos: Tuple[str, ...] = ()
    keyframe_codec: Optional[str] = None
    target_bpp: Optional[float] = None
    warnings: Tuple[str, ...] = ()
    verify: Optional[VerifyResult] = None
    bits_per_param: float = 0.0          # the weights section's bits per network parameter
    lam: Optional[float] = None          # rate-aware fit: lambda at the end (loss = MSE + lambda x bpp)
    rate_estimate_bytes: Optional[int] = None  # rate-aware fit: its estimate of the weights section
    fit_psnr_float: Optional[float] = None     # rate-aware fit: PSNR of the float and the quantized network
    fit_psnr_quantized: Optional[float] = None  # (the loss's measure, over the fitted items)
    peak_rss_mib: Tuple[float, ...] = ()       # peak resident memory of each process (rank) up to the fit's end
    steps: int = 0                       # optimizer steps the fit ran
    effort: str = ""                     # what set the fit's length: "preset medium", "--epochs 300", "--steps N"
    rate_term: Optional[str] = None      # rate-aware fit: "sampled" when the per-frame maps' rate came from the
                                         # frames each step drew (--rate-term sampled), else "whole"
    scene_cuts: Tuple[Tuple[int, ...], ...] = ()  # per video, the frames where the layout restarts its clips
    clip_len: int = 1                    # keyframe interval (frames per clip; 1 for frame models)
    clip_len_scores: Tuple[Tuple[int, float], ...] = ()  # chosen clip length: each candidate's starting PSNR
    keyframe_quality: Optional[int] = None   # the keyframes' quality on their codec's scale
    keyframes_recoded: bool = False      # coded again after the fit with the budget the network left unspent

    def to_dict(self) -> Dict[str, object]:
        out: Dict[str, object] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        out["verify"] = self.verify.to_dict() if self.verify is not None else None
        return out


def write(plan: EncodePlan, coded: CodedFile) -> int:
    """Stage 4: write the file atomically; return its size on disk (the rate)."""
    atomic_write_bytes(plan.output, coded.data)
    return plan.output.stat().st_size


def _result(plan: EncodePlan, fitted: FittedModel, coded: CodedFile, size: int, seconds: float,
            checked: Optional[VerifyResult]) -> EncodeResult:
    kf = plan.keyframes
    res = fitted.result
    return EncodeResult(
        path=str(plan.output), bytes=size, bpp=size * 8 / plan.pixels, psnr=coded.psnr, psnr_y=coded.psnr_y,
        frames=plan.num_frames, params=fitted.params, seconds=seconds, fit_seconds=fitted.result.seconds,
        model=plan.spec.name, weights_bytes=coded.weights_bytes, keyframe_bytes=coded.keyframe_bytes,
        header_bytes=size - coded.weights_bytes - coded.keyframe_bytes, device=str(plan.device),
        epochs=round(res.epochs, 2), videos=tuple(v.name for v in plan.infos),
        keyframe_codec=kf.codec_name if kf else None,
        target_bpp=plan.target_bpp, warnings=fitted.warnings + coded.warnings, verify=checked,
        bits_per_param=coded.weights_bytes * 8 / max(fitted.params, 1),
        lam=_finite(res.lam), rate_estimate_bytes=(None if fitted.estimated_bits is None
                                                   else int(round(fitted.estimated_bits / 8))),
        fit_psnr_float=_finite(res.float_psnr), fit_psnr_quantized=_finite(res.quant_psnr),
        peak_rss_mib=fitted.peak_rss, steps=res.steps, effort=plan.cfg.effort,
        rate_term=None if fitted.estimated_bits is None else ("sampled" if res.sampled_rate else "whole"),
        scene_cuts=plan.layout.cuts,
        clip_len=plan.layout.clip_len, clip_len_scores=plan.clip_len_scores, keyframe_quality=coded.keyframe_quality,
        keyframes_recoded=coded.keyframes_recoded)


def _finite(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def encode(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, cfg: EncodeConfig, *,
           progress: bool = False) -> EncodeResult:
    """Plan, fit, code and write ``output`` (then decode and measure it with ``cfg.verify``).

    Under torchrun (several processes) every rank plans and fits its share of each batch
    (:mod:`nervcodec.fit.distributed`); rank 0 alone codes, writes and verifies, and every
    rank returns rank 0's result, or raises rank 0's error."""
    t0 = time.monotonic()
    dist = init_from_env(resolve_device(cfg.device).type)
    main = dist is None or dist.main
    planned = plan(inputs, output, cfg, progress and main)
    try:
        return _fit_and_finish(planned, cfg, dist, progress and main, t0)
    finally:
        if planned.cache is not None:
            planned.cache.close()


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (0 where the platform does not say)."""
    try:
        import resource
        import sys
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    except (ImportError, OSError):
        return 0.0


def _fit_and_finish(planned: EncodePlan, cfg: EncodeConfig, dist, progress: bool, t0: float) -> EncodeResult:
    fitted = fit_model(planned, progress)
    rss = tuple(dist.all_gather(peak_rss_mib())) if dist is not None else (peak_rss_mib(),)
    fitted = dataclasses.replace(fitted, peak_rss=rss)
    if dist is None:
        return _finish(planned, fitted, cfg, t0, progress)
    outcome: Tuple[str, object] = ("", None)
    crash: Optional[BaseException] = None
    if dist.main:
        try:
            outcome = ("ok", _finish(planned, fitted, cfg, t0, progress))
        except NervCodecError as exc:
            outcome = ("error", (type(exc), str(exc)))
        except KeyboardInterrupt:
            outcome = ("interrupt", None)
        except BaseException as exc:   # a bug or the system: the others must not wait for rank 0 forever
            crash, outcome = exc, ("crash", f"{type(exc).__name__}: {exc}")
    kind, value = dist.broadcast_object(outcome)
    if kind == "error":
        cls, message = value
        raise cls(message)
    if kind == "interrupt":
        raise InterruptedError_("interrupted while writing the file; nothing was written")
    if kind == "crash":
        if crash is not None:
            raise crash
        raise NervCodecError(f"rank 0 failed while writing the file ({value})")
    return value


def _finish(planned: EncodePlan, fitted: FittedModel, cfg: EncodeConfig, t0: float,
            progress: bool = False) -> EncodeResult:
    """Stages 3 and 4 (and --verify) on a fitted model."""
    coded = code(planned, fitted, progress)
    size = write(planned, coded)
    if fitted.checkpoint is not None:
        fitted.checkpoint.remove()  # the file is written: nothing is left to resume
    seconds = time.monotonic() - t0
    checked = (verify(planned.output, planned.inputs, cfg.device, reference=cfg.reference, holdout=cfg.holdout,
                      mask=cfg.mask, figure=cfg.figure) if cfg.verify else None)
    return _result(planned, fitted, coded, size, seconds, checked)
