"""The fitting loop.

Everything in the inner loop stays on the device: the items are gathered by
index tensors, converted to float per batch, and the running loss is
accumulated on the device and read back only every ``refresh_seconds`` (for the
progress display and the divergence check).  On CUDA the forward pass runs
under bf16 autocast.

Failure modes handled here, so that no caller sees a crash:

* Divergence: a non-finite loss (or non-finite weights at the end) stops the fit
  with :class:`~nervcodec.errors.FitDivergedError`, which says to lower the
  learning rate.  So does a fit that collapses while its loss stays finite (D-NeRV
  clamps its output, so a blown-up network can still give a finite loss): a
  PSNR more than ``COLLAPSE_DB`` below the model's starting PSNR and under
  ``COLLAPSE_FLOOR_DB``, over a window of at least ``COLLAPSE_STEPS`` steps (one batch of
  a clip with scene cuts and fast motion can score far below the clip's PSNR).  The margins are far outside what working fits do (the
  per-step PSNR of D-NeRV on people_qcif_48f at the default learning rate dips at
  most 2.6 dB below its start; ``--lr 10`` falls from 33.7 dB to 6.4 dB).  Both
  are checked at each refresh (at most ``refresh_seconds`` of wasted steps)
  rather than after every step, which would force a device-host synchronisation
  per step.
* Ctrl-C (and SIGTERM where the process turned it into an exception): while the
  loop runs, the signal only sets a flag; the current step finishes, a checkpoint
  is saved if one is in use, and the fit stops with ``KeyboardInterrupt``.  An
  exception raised at a random point could be swallowed by code that ignores
  exceptions (a ``__del__``, a callback) and the fit would go on; a second
  Ctrl-C still stops at once.
"""
from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..errors import ConfigError, FitDivergedError
from ..model.base import VideoModel
from ..model.planes import split_planes
from .data import PLANE_WEIGHTS, FitData
from ..distributed import Dist, current, pad_to_batches, shard

__all__ = ["FitConfig", "FitResult", "fit", "batch_loss", "StopFlag", "evaluate_psnr"]

log = logging.getLogger("nervcodec.fit")

ProgressFn = Callable[[int, int, float], None]  # (step, total_steps, psnr)


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 300
    steps: Optional[int] = None  # optimizer steps in all (an effort preset's budget); None = epochs x steps/epoch
    batch: int = 8               # items per step
    lr: float = 5e-3
    warmup: float = 0.2          # fraction of steps with a linear ramp from 0.1 lr to lr, then cosine to 0
    loss: str = "l2"             # l2 | fusion
    seed: int = 0
    amp: bool = True             # bf16 autocast on CUDA (ignored on CPU)
    compile: Optional[bool] = None  # torch.compile the model: None = on CUDA only (see _compiled)
    channels_last: Optional[bool] = None  # NHWC weights and activations: None = on the CPU only (see CHANNELS_LAST)
    betas: tuple = (0.9, 0.999)
    # the rate term of per-frame tensors (VideoModel.rate_rows) from the rows each step's batch reads,
    # scaled to the whole tensor, instead of from every row at every step (one process only; the encoder
    # sets it from --rate-term, see codec/effort.py)
    sample_rate: bool = False

    def __post_init__(self) -> None:
        if self.loss not in ("l2", "fusion"):
            raise ConfigError(f"unknown loss {self.loss!r} (l2 or fusion)")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"the fit needs at least one step, got {self.steps}")

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps in all: the step budget, or ``epochs`` whole epochs."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch


@dataclass(frozen=True)
class FitResult:
    steps: int
    seconds: float
    final_psnr: float            # PSNR of the plane-weighted MSE over the last epoch's steps (as fitted)
    start_psnr: float = float("nan")  # the same measure of the model as it started (nan when resumed)
    float_psnr: float = float("nan")  # with a rate term: the whole input, float weights ...
    quant_psnr: float = float("nan")  # ... and the quantized weights the file will hold
    lam: float = float("nan")         # with a rate term: lambda at the end
    epochs: float = float("nan")      # passes over the items the steps made (steps / steps per epoch)
    sampled_rate: bool = False        # the rate of per-frame tensors was estimated from the steps' frames


class StopFlag:
    """While entered (on the main thread), SIGINT, and SIGTERM where someone turned it into an
    exception (the command line does), set ``requested`` instead of raising; a second signal
    raises ``KeyboardInterrupt`` at once.  Elsewhere it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "StopFlag":
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._old[signal.SIGINT] = signal.signal(signal.SIGINT, self._handler)
            if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None):
                self._old[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def lr_factor(step: int, total: int, warmup: float) -> float:
    w = int(warmup * total)
    if step < w:
        return 0.1 + 0.9 * step / max(w, 1)
    p = (step - w) / max(total - w, 1)
    return 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


def _ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SSIM of (N, h, w) planes; a window that fits planes smaller than 11 pixels."""
    from pytorch_msssim import ssim
    side = min(x.shape[-1], x.shape[-2])
    win = min(11, side if side % 2 else side - 1)
    if win < 3:
        return torch.zeros((), device=x.device)
    return 1 - ssim(x[:, None], y[:, None], data_range=1.0, size_average=True, win_size=win)


def _errors(out: torch.Tensor, data: FitData, idx: torch.Tensor) -> tuple:
    """Per-plane errors of the items ``idx`` against the model output, as (error, loss weight, visible
    fraction of each frame or None); errors are zero in the holes of ``data.pixels``."""
    py, pc = split_planes(out.float(), data.chroma_shift)
    ty = data.y[idx].float() / data.max_value
    vis = vis_c = frac = frac_c = None
    if data.pixels is not None:
        vis = data.pixels[idx].float()                                    # (B, D, h, w)
        frac = vis.mean(dim=(-1, -2))
        py, ty = py * vis, ty * vis
    err = [(py - ty, PLANE_WEIGHTS[0], frac)]
    if pc is not None:
        tc = data.c[idx].float() / data.max_value
        if vis is not None:
            sy, sx = data.chroma_shift
            b, d, h, w = vis.shape
            vis_c = -F.max_pool2d(-vis.reshape(b * d, 1, h, w), (1 << sy, 1 << sx), ceil_mode=True)
            vis_c = vis_c.reshape(b, d, 1, *vis_c.shape[-2:])
            frac_c = vis_c.mean(dim=(-1, -2, -3))
            pc, tc = pc * vis_c, tc * vis_c
        err.append((pc[:, :, 0] - tc[:, :, 0], PLANE_WEIGHTS[1], frac_c))
        err.append((pc[:, :, 1] - tc[:, :, 1], PLANE_WEIGHTS[2], frac_c))
    return py, ty, err


def _weighted_mean(err: list, mask: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    wsum = sum(w for _, w, _ in err)
    return sum(w * (_frame_mean(fn(e), frac) * mask).sum() for e, w, frac in err) / (wsum * mask.sum().clamp_min(1.0))


def _frame_mean(x: torch.Tensor, frac: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of (B, D, h, w) over each frame's visible samples (all of them when ``frac`` is None)."""
    m = x.mean(dim=(-1, -2))
    return m if frac is None else m / frac.clamp_min(1e-6)


def batch_loss(out: torch.Tensor, data: FitData, idx: torch.Tensor, loss: str) -> tuple:
    """(loss, weighted mse) for the items ``idx`` given the model output."""
    py, ty, err = _errors(out, data, idx)
    mask = data.mask[idx]                           # (B, D)
    mse = _weighted_mean(err, mask, torch.square)
    if loss == "l2":
        return mse, mse
    l1 = _weighted_mean(err, mask, torch.abs)
    keep = mask.reshape(-1) > 0
    s = _ssim_loss(py.reshape(-1, *py.shape[-2:])[keep], ty.reshape(-1, *ty.shape[-2:])[keep])
    return 0.7 * l1 + 0.3 * s, mse


def _snapshot(model, opt, sched, gen_state, epoch_mse, epoch_counted, epoch, index, step, total, steps_per_epoch,
              rate=None) -> Dict[str, Any]:
    """The fitting state after ``step`` (= ``index`` steps into ``epoch``): tensors and plain values only."""
    state = {"epoch": epoch, "index": index, "step": step, "total": total, "steps_per_epoch": steps_per_epoch,
             "rate": rate.state_dict() if rate is not None else None,
             "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "generator": gen_state, "torch_rng": torch.get_rng_state(), "epoch_mse": float(epoch_mse),
             "epoch_counted": float(epoch_counted)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore(state: Dict[str, Any], model, opt, sched, gen, epoch_mse, epoch_counted, total, steps_per_epoch,
             rate=None) -> tuple:
    """Load a :func:`_snapshot` into the fit's objects; return (epoch, index in it, step)."""
    if state.get("total") != total or state.get("steps_per_epoch") != steps_per_epoch:
        raise ConfigError("the checkpoint belongs to a fit with another number of steps; start over")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            if current() is not None:   # rank 0's own GPU's generator, for this rank's GPU
                torch.cuda.set_rng_state(state["cuda_rng"][0])
            else:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        epoch_mse.fill_(float(state["epoch_mse"]))
        # checkpoints from before this count: every step of the epoch counted
        epoch_counted.fill_(float(state.get("epoch_counted", state["index"])))
        if (rate is not None) != (state.get("rate") is not None):
            raise ValueError("one of the fits has a rate term and the other has not")
        if rate is not None:
            rate.load_state_dict(state["rate"], model)
        return int(state["epoch"]), int(state["index"]), int(state["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"the checkpoint does not fit this model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); start over") from None


def _live_slots(model: VideoModel, data: Any) -> Optional[List[int]]:
    """The clip positions a step synthesises, or None for all: a model that makes each frame of a clip on its
    own (``frames_apart``: latent grids) skips the positions no item has in the loss (at D = 2, every clip's
    keyframe: half the synthesis of a step), whose outputs the mask would multiply by zero."""
    if not model.frames_apart:
        return None
    live = data.live_slots()
    return live if 0 < len(live) < data.clip_len else None


def _compiled(model: VideoModel, cfg: FitConfig, device: torch.device) -> Callable[..., torch.Tensor]:
    """The forward function to train with: torch.compile'd where asked (default: CUDA only, since
    on a 2-core CPU compiling costs more than it saves on short fits), with a fallback to eager
    when compilation is unavailable or fails on the first call."""
    want = cfg.compile if cfg.compile is not None else device.type == "cuda"
    if not want or not hasattr(torch, "compile"):
        return model
    try:
        compiled = torch.compile(model)
    except Exception as exc:  # pragma: no cover - depends on the platform
        log.warning("torch.compile unavailable (%s); fitting eagerly", exc)
        return model
    state = {"fn": compiled, "tried": False}

    def forward(*args: Any) -> torch.Tensor:
        if state["tried"]:
            return state["fn"](*args)
        state["tried"] = True
        try:
            return state["fn"](*args)
        except Exception as exc:  # compilation errors surface on the first call
            log.warning("torch.compile failed (%s: %s); fitting eagerly", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
            state["fn"] = model
            return model(*args)
    return forward


@torch.no_grad()
def evaluate_psnr(model: VideoModel, data: FitData, batch: int, use_amp: bool,
                  weights: Optional[Dict[str, torch.Tensor]] = None, dist: Optional[Dist] = None) -> float:
    """PSNR of the plane-weighted MSE of ``model`` (run with ``weights`` in place of its parameters
    when given) over every item of ``data`` (what the loss measures); with ``dist`` each rank
    measures every world-th batch and the sums are all-reduced."""
    device = data.t.device
    total = torch.zeros((), device=device)
    frames = torch.zeros((), device=device)
    first, stride = (dist.rank * batch, dist.world * batch) if dist is not None else (0, batch)
    for start in range(first, data.num_items, stride):
        b = data.batch(torch.arange(start, min(start + batch, data.num_items), device=device))
        every = slice(None)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = (model(b.t, b.keyframes_float(every)) if weights is None else
                   functional_call(model, weights, (b.t, b.keyframes_float(every))))
        mask = b.mask
        mse = _weighted_mean(_errors(out, b, every)[2], mask, torch.square)
        n = mask.sum()
        total += mse * n.clamp_min(1.0)
        frames += n
    if dist is not None:
        both = dist.sum_(torch.stack([total, frames]))
        total, frames = both[0], both[1]
    return _psnr(float(total) / max(float(frames), 1.0))


def _psnr(mse: float) -> float:
    return -10 * math.log10(max(mse, 1e-12)) if math.isfinite(mse) else float("nan")


# On the CPU, oneDNN's convolutions run much faster on channels-last (NHWC) tensors: measured on this
# project's 2-core CPU (benchmarks/step_time.py), one training step of D-NeRV (64k
# parameters, people_qcif_48f, 2 clips) 0.531 -> 0.308 s on one thread and 0.282 -> 0.191 s on two,
# NeRV (64k, 8 frames) 0.077 -> 0.047 s on two.  The weights are handed back in the usual layout.
# Off on CUDA until measured there.
def _channels_last(cfg: "FitConfig", device: torch.device) -> bool:
    return cfg.channels_last if cfg.channels_last is not None else device.type == "cpu"


# Under torchrun the fit checks progress, divergence and Ctrl-C every this many steps, on values
# all-reduced over the ranks (a wall-clock refresh would fall on different steps in each rank).
DIST_REFRESH_STEPS = 20

# A fit whose PSNR falls this far below its start, and under the floor, has diverged.
COLLAPSE_DB = 10.0
COLLAPSE_FLOOR_DB = 20.0
# ... measured over at least this many steps (or the fit's last ones): one batch is not the clip.  On bikes
# (scene cuts, fast motion) single steps of a working grid fit ranged from 22 to 42 dB around a 31.3 dB
# start, 2 dB from the floor (docs/benchmarks.md, "The sampled rate term, measured in the faster presets").
COLLAPSE_STEPS = 16


def _diverged(step: int, total: int, lr: float, why: str = "non-finite loss") -> FitDivergedError:
    return FitDivergedError(f"the fit diverged ({why} at step {step} of {total}) with a peak learning "
                            f"rate of {lr:g}; lower --lr and try again")


CURVATURE_PROBES = 8   # random probes of the distortion's curvature before the rate term begins (:func:`curvature`)


def _probe(out: torch.Tensor, b: FitData, gen: torch.Generator) -> torch.Tensor:
    """``v . out`` for a random ``v`` whose gradient ``J^T v`` has ``E[(J^T v)^2] = diag(J^T W J)``, ``W`` the
    weight the squared-error loss gives each sample (:func:`_errors`' planes, weights and visible fractions,
    as :func:`_weighted_mean` weighs them, zero in frames outside the loss): ``v`` normal, scaled by the
    square root of that weight (Hutchinson's estimator of the loss's Gauss-Newton curvature)."""
    total = out.new_zeros((), dtype=torch.float32)
    for e, w, frac in _errors(out, b, slice(None))[2]:
        frames = b.mask if frac is None else b.mask / frac.clamp_min(1e-6)
        v = torch.randn(e.shape, generator=gen).to(e.device)
        total = total + (e * v * (frames.sqrt()[:, :, None, None] * math.sqrt(w / (e.shape[-1] * e.shape[-2])))).sum()
    return total


def curvature(model: torch.nn.Module, forward: Callable, data: Any, batch: int, seed: int,
              probes: int = CURVATURE_PROBES, names: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Per parameter name (``names``, or every trainable parameter), the mean over its elements of the
    Gauss-Newton curvature of the squared error (``diag(J^T W J)``, ``J`` the output's derivative, ``W`` the
    loss's weight per sample; up to one factor for every parameter), from ``probes`` random batches of
    ``batch`` items (:func:`_probe`): how much distortion a small change of each parameter adds, what
    :func:`~nervcodec.quant.qat.latent_weights` weighs the latent maps' starting steps by.  Only the named
    parameters are differentiated.  Its own generator: the fit's random streams are untouched."""
    gen = torch.Generator(device="cpu").manual_seed(seed + 7919)
    wanted = None if names is None else set(names)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and (wanted is None or n in wanted)]
    if not named:
        return {}
    sums = [torch.zeros((), device=p.device) for _, p in named]
    m = data.num_items
    for _ in range(probes):
        idx = torch.randperm(m, generator=gen)[:max(1, min(batch, m))].to(data.mask.device)
        b = data.batch(idx)
        out = forward(b.t, b.keyframes_float(slice(None)))
        grads = torch.autograd.grad(_probe(out, b, gen), [p for _, p in named], allow_unused=True)
        for k, g in enumerate(grads):
            if g is not None:
                sums[k] += g.float().square().sum()
    values = torch.stack(sums).tolist()
    return {n: v / (probes * max(p.numel(), 1)) for (n, p), v in zip(named, values)}


def fit(model: VideoModel, data: FitData, cfg: FitConfig, device: torch.device,
        progress: Optional[ProgressFn] = None, refresh_seconds: float = 0.5,
        checkpoint: Optional[Callable[[Callable[[], Dict[str, Any]], bool], None]] = None,
        resume: Optional[Dict[str, Any]] = None, rate: Optional[Any] = None) -> FitResult:
    """Fit ``model`` (in place) to ``data`` for ``cfg.steps`` optimizer steps (or ``cfg.epochs`` epochs);
    a step budget that ends inside an epoch ends the fit there.

    ``checkpoint`` (e.g. a :class:`~nervcodec.fit.checkpoint.Checkpointer`) is called after
    every step with a function that returns the complete fitting state and whether the fit
    is about to stop; ``resume`` is such a state, from which the fit continues exactly where
    it was saved.  Raises :class:`FitDivergedError` on a non-finite loss and
    ``KeyboardInterrupt`` after the step during which Ctrl-C was pressed.

    ``rate`` (a :class:`~nervcodec.quant.RateTerm`) turns on quantization-aware, rate-aware
    fitting for the last part of the steps: the network then runs with the quantized weights
    and the loss gains lambda x the estimated rate (see :mod:`nervcodec.quant.qat`).
    """
    torch.manual_seed(cfg.seed)
    model.to(device).train()
    nhwc = _channels_last(cfg, device)
    if nhwc:
        model.to(memory_format=torch.channels_last)
    data = data.to(device)
    dist = current()
    m = data.num_items
    if dist is not None:
        if cfg.batch % dist.world:
            raise ConfigError(f"the batch of {cfg.batch} items does not divide over {dist.world} processes: "
                              f"give a --batch that is a multiple of {dist.world} (--batch is the global batch)")
        batch = cfg.batch                      # global: short epochs are padded by wrapping around
    else:
        batch = max(1, min(cfg.batch, m))
    steps_per_epoch = math.ceil(m / batch)
    total = cfg.total_steps(steps_per_epoch)
    epochs = -(-total // steps_per_epoch)
    eval_batch = max(batch // (dist.world if dist is not None else 1), 8)   # items per rank per evaluation pass
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas,
                           **({"fused": True} if device.type == "cuda" else {}))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cfg.warmup))
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    use_amp = cfg.amp and device.type == "cuda"
    run_mse = torch.zeros((), device=device)
    run_loss = torch.zeros((), device=device)
    run_n = 0
    # the collapse test's window (COLLAPSE_STEPS or more steps), apart from the progress's
    col_mse = torch.zeros((), device=device)
    col_counted = torch.zeros((), device=device)
    col_n = 0
    # steps whose items have frames in the loss: an item whose frames are all substituted keyframes has
    # none, and its mse (0) must not count towards the PSNRs the fit reports (a step still runs on it)
    run_counted = torch.zeros((), device=device)
    epoch_mse = torch.zeros((), device=device)
    epoch_counted = torch.zeros((), device=device)
    t0 = last = time.monotonic()
    step = 0
    start_epoch = start_i = 0
    start_psnr = float("nan")
    shown = float("nan")    # the PSNR the progress shows
    forward = _compiled(model, cfg, device)
    if rate is not None and dist is not None:
        rate.reduce = dist.average
    if resume is not None:
        start_epoch, start_i, step = _restore(resume, model, opt, sched, gen, epoch_mse, epoch_counted, total,
                                              steps_per_epoch, rate)
    else:
        if dist is not None:   # one model everywhere, as DistributedDataParallel's constructor ensures
            dist.broadcast_([t.data for t in model.state_dict().values()])
        start_psnr = evaluate_psnr(model, data, eval_batch, use_amp, dist=dist)  # no gradients: larger batches
    collapse = min(start_psnr - COLLAPSE_DB, COLLAPSE_FLOOR_DB) if math.isfinite(start_psnr) else -math.inf
    rate_start = rate.start_step(total) if rate is not None else None
    # ranks of a data-parallel fit draw different frames, and lambda must move alike on every rank: there
    # every rank estimates the rate from every row (the same numbers everywhere)
    sampled = cfg.sample_rate and dist is None
    main = dist is None or dist.main
    live = _live_slots(model, data)
    if live is not None:    # on the device once: no copy per step
        live = torch.tensor(live, device=device)
    with StopFlag() as stop:
        for epoch in range(start_epoch, epochs):
            gen_state = gen.get_state()  # before this epoch's order is drawn: what a checkpoint stores
            perm = torch.randperm(m, generator=gen)
            if dist is not None:
                perm = pad_to_batches(perm, steps_per_epoch, batch)
            perm = perm.to(device)
            first = start_i if epoch == start_epoch else 0
            if first == 0:
                epoch_mse.zero_()
                epoch_counted.zero_()
            for i in range(first, min(steps_per_epoch, total - epoch * steps_per_epoch)):
                idx = shard(perm, i, batch, dist)
                if rate is not None and not rate.active and step >= rate_start:
                    # the curvature weighs only the latent maps' starts (none: nothing is computed)
                    rate.begin(model, curvature(model, forward, data, batch, cfg.seed, names=model.latent_names()))
                quantized = rate is not None and rate.active
                b = data.batch(idx)
                if quantized:   # the network runs on the weights the file will hold (see RateTerm.swap_in);
                    # one process estimates the rate of per-frame tensors from the rows the batch reads
                    rate.swap_in(model, rate.noisy(step, total), model.rate_rows(b.t) if sampled else None)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    if live is None:
                        out = forward(b.t, b.keyframes_float(slice(None)))
                    else:   # the frames in the loss alone: the others' gradient is exactly zero
                        out = forward(b.t, b.keyframes_float(slice(None)), 0.0, live)
                        b = b.at_slots(live)
                loss, mse = batch_loss(out, b, slice(None), cfg.loss)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if quantized:   # float weights back; the steps' share of the gradient; then the rate's
                    bits = rate.swap_out(model)
                    rate_loss = rate.rate_loss(bits)
                    rate_loss.backward()
                    loss = loss.detach() + rate_loss.detach()
                stop_flag = None
                if dist is not None:   # Ctrl-C rides on the gradients' all-reduce: no collective of its own
                    stop_flag = torch.full((1,), float(stop.requested), device=device)
                    dist.average([p.grad for p in model.parameters()]
                                 + ([rate.log_step.grad] if quantized else []) + [stop_flag])
                opt.step()
                sched.step()
                if quantized:
                    rate.after_step(bits, model)
                step += 1
                d = mse.detach()
                counted = (b.mask.sum() > 0).to(d.dtype)    # on the device: no synchronisation
                run_mse += d
                run_counted += counted
                run_loss += loss.detach()
                epoch_mse += d
                epoch_counted += counted
                run_n += 1
                col_mse += d
                col_counted += counted
                col_n += 1
                now = time.monotonic()
                if dist is None:
                    stopping = stop.requested
                else:   # read every step on the CPU; on a GPU at the refresh steps (no sync per step)
                    stopping = device.type == "cpu" and bool(stop_flag.item() > 0)
                due = (now - last >= refresh_seconds if dist is None else step % DIST_REFRESH_STEPS == 0) \
                    or step == total
                if due:
                    sums = torch.stack([run_mse, run_loss, run_counted,
                                        torch.full((), float(stop.requested), device=device), col_mse, col_counted])
                    if dist is not None:   # the same numbers, hence the same decisions, on every rank
                        sums = dist.sum_(sums)
                    mse_sum, loss_sum, counted_n, stops, col_sum, col_n_counted = sums.tolist()
                    stopping = stopping or stops > 0
                    mean_loss = loss_sum / (run_n * (dist.world if dist is not None else 1))
                    if not (math.isfinite(mse_sum) and math.isfinite(mean_loss)):
                        raise _diverged(step, total, cfg.lr)
                    # a window of steps without a frame in the loss says nothing of the PSNR: it waits for
                    # the next window (the last one shows the PSNR last measured)
                    if (col_n >= COLLAPSE_STEPS or step == total) and col_n_counted > 0:
                        fell = _psnr(col_sum / col_n_counted)
                        if fell < collapse:
                            raise _diverged(step, total, cfg.lr, f"PSNR fell to {fell:.2f} dB over the last "
                                                                 f"{col_n} steps, from {start_psnr:.2f} dB")
                        col_mse.zero_()
                        col_counted.zero_()
                        col_n = 0
                    if counted_n > 0 or step == total:
                        if counted_n > 0:
                            shown = _psnr(mse_sum / counted_n)
                        run_mse.zero_()
                        run_loss.zero_()
                        run_counted.zero_()
                        run_n = 0
                        last = now
                        if progress is not None and main:
                            progress(step, total, shown)
                    else:
                        last = now      # the window goes on (no synchronisation at every step meanwhile)
                if checkpoint is not None and main:
                    checkpoint(lambda: _snapshot(model, opt, sched, gen_state, epoch_mse, epoch_counted, epoch, i + 1,
                                                 step, total, steps_per_epoch, rate), stopping)
                if stopping:
                    raise KeyboardInterrupt
    if dist is not None:
        dist.average([epoch_mse, epoch_counted])
    if nhwc:   # the weights go on in the usual (contiguous) layout
        model.to(memory_format=torch.contiguous_format)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise _diverged(step, total, cfg.lr)
    # the last epoch's steps with frames in the loss; if it had none (a step budget ending one step into an
    # epoch, on an item of keyframes alone), the PSNR the progress last measured
    final = _psnr(float(epoch_mse) / float(epoch_counted)) if float(epoch_counted) > 0 else shown
    model.eval()
    passes = step / steps_per_epoch
    if rate is None or not rate.active:
        return FitResult(step, time.monotonic() - t0, final, start_psnr, epochs=passes)
    with torch.no_grad():
        hard = rate.quantized(model)
    float_psnr = evaluate_psnr(model, data, eval_batch, use_amp, dist=dist)
    quant_psnr = evaluate_psnr(model, data, eval_batch, use_amp, hard, dist=dist)
    return FitResult(step, time.monotonic() - t0, final, start_psnr, float_psnr, quant_psnr, float(rate.lam), passes,
                     sampled_rate=rate.sampled)
