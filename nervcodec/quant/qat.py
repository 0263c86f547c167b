"""The rate term of the fit: learned quantization steps and a differentiable estimate of the coded size.

For the last part of a fit (``RateTermConfig.start``, a fraction of the steps) the
network runs with quantized weights and the loss becomes::

    loss = distortion(quantized network) + lambda * estimated_bits / pixels

* **Distortion** sees ``w_hat = s * round(w / s)`` with a straight-through rounding
  whose gradient also reaches the step ``s`` (as in LSQ): the weights the fit ends
  with are the ones the file stores, rounded exactly as :func:`quantize_with_step`
  rounds them, with ``s`` already rounded to the float16 the file holds.
* **Rate** is the ideal code length of ``w / s + u`` (``u`` uniform noise in
  [-1/2, 1/2], the usual differentiable stand-in for rounding) under a zero-mean
  discretised Laplace per tensor whose scale is the maximum-likelihood one,
  ``mean |w / s|``, plus a fixed side cost per tensor.  The entropy coder then
  chooses the best of its models by real coded size, so the file is usually a
  little smaller than this estimate (see :meth:`RateTerm.estimate_bits`).
* **Steps**: one per tensor, learned by Adam in the log domain, starting where a
  Laplace of the tensor's spread costs the target bits per parameter.
* **Lambda**: fixed (``--lambda``) or, when a budget is given, the Lagrange
  multiplier of the constraint "coded weights = budget".  It starts where the
  distortion's and the rate's gradients on the steps cancel (least squares, once),
  then follows dual ascent, ``log lambda += rate * clamp(bits / budget - 1, -0.5, 0.5)``
  after every step, on the device, without a host synchronisation.  That is how ``--bpp`` lands on
  its target whatever the network's size turns out to cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from ..entropy.context import MIN_CONTEXT_SIZE, context_entropy_bits
from .quantize import MIN_STEP

__all__ = ["RateTermConfig", "RateTerm", "laplace_bits", "histogram_bits", "TENSOR_SIDE_BITS", "CODED_CHECK_STEPS"]

# Side information of one coded tensor in the weights section (the scale count, a float16 step, the
# coder's tag, offset, span, centre, shape parameter and word count, and the range coder's last word),
# measured on D-NeRV and NeRV files: 70-110 bits.
TENSOR_SIDE_BITS = 88
# Adam for the log-steps forgets fast (beta2 = 0.9): lambda can move by orders of magnitude while it
# settles, and a long memory of the large gradients of that time would freeze the steps afterwards.
STEP_BETAS = (0.9, 0.9)
# Every this many steps the controller re-measures how the coder's real size compares with the Laplace
# estimate it steers by (the coder picks per tensor among several models, and for large tensors of mostly
# zeros, such as latent grids, a histogram costs far less than the Laplace says).
CODED_CHECK_STEPS = 25
# ... and aims this much under the budget: a file over it has all its steps scaled up (codec/coding.py's
# trim), which costs latents far more than the few bytes it saves (0.8 dB for 1.5 % on people).
CODED_MARGIN = 0.015
_LN2 = math.log(2.0)
# The least Laplace scale (in steps) of a tensor's estimate: an all-zero tensor still costs a little
MIN_SCALE = 0.05
# The latent maps' shared starting step (RateTerm.begin): bisection steps on its log, and the stride
# (n // BITS_SAMPLE) of the values of a map its bits are estimated from
LATENT_START_ITERATIONS = 30
BITS_SAMPLE = 1 << 14


class _Sampled:
    """A tensor's mean and largest ``|w|`` and every ``n // BITS_SAMPLE``-th of its values (fewer than
    ``2 x BITS_SAMPLE``): enough to estimate the bits of its rounded symbols at any step (:meth:`bits`)
    without a pass over all of them."""

    def __init__(self, p: torch.Tensor):
        flat = p.detach().reshape(-1).float()
        self.n = flat.numel()
        self.spread = float(flat.abs().mean()) if self.n else 0.0
        self.top = float(flat.abs().max()) if self.n else 0.0
        self.values = flat[::max(1, self.n // BITS_SAMPLE)]

    def bits(self, step: float) -> float:
        """Estimated bits of all of the tensor's rounded symbols at ``step``, under a Laplace of scale
        ``mean |w| / step`` (the fit's term, :meth:`RateTerm._bits`, takes the scale of the symbols
        themselves; no side information)."""
        if self.n == 0:
            return 0.0
        beta = torch.tensor(max(self.spread / step, MIN_SCALE), device=self.values.device)
        return float(laplace_bits(torch.round(self.values / step), beta)) * self.n / self.values.numel()


def laplace_bits(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Bits of the real-valued symbols ``x`` under a zero-mean Laplace of scale ``beta``, discretised on
    unit bins centred on ``x``: ``-log2(F(x + 1/2) - F(x - 1/2))`` summed.  Stable in both regimes."""
    return laplace_bits_each(x, beta).sum()


def laplace_bits_each(x: torch.Tensor, beta: torch.Tensor, sizes: Optional[List[int]] = None) -> torch.Tensor:
    """:func:`laplace_bits` element by element; with ``sizes``, ``beta`` is one scale per tensor and ``x``
    the tensors' elements one after the other (the scale's terms are then computed once per tensor)."""
    return _laplace_parts(x, beta, sizes)[0]


def _laplace_parts(x: torch.Tensor, beta: torch.Tensor, sizes: Optional[List[int]] = None) -> tuple:
    """(bits of each element, |x|, 1 / beta per element, e1, e2): the bits and the terms that their
    gradient reuses (:class:`_LaplaceBits`), computed once."""
    a = x.abs()
    ib = 1.0 / beta
    log_one_minus = torch.log(-torch.expm1(-ib))                   # log(1 - e^(-1/beta))
    if sizes is not None:
        ib, log_one_minus = spread(ib, sizes), spread(log_one_minus, sizes)
    tail = math.log(0.5) - (a - 0.5) * ib + log_one_minus         # |x| >= 1/2
    e1, e2 = _bin_exps(a, ib)
    core = torch.log1p(-0.5 * (e1 + e2))
    return -torch.where(a >= 0.5, tail, core) / _LN2, a, ib, e1, e2


def _bin_exps(a: torch.Tensor, ib: torch.Tensor) -> tuple:
    """The two exponentials of a unit bin's Laplace probability at ``|x| = a`` under ``1 / beta = ib``:
    ``e^(-(1/2 - |x|) / beta)`` inside the central bin (1 outside it) and ``e^(-(|x| + 1/2) / beta)``."""
    return torch.exp((a - 0.5).clamp_max(0.0) * ib), torch.exp(-(a + 0.5) * ib)


def _abs_slope(a: torch.Tensor, ib: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor) -> tuple:
    """(d bits / d|x| times ln 2, the central bin's ``1 - (e1 + e2) / 2``) from :func:`_bin_exps`' terms."""
    p = 1.0 - 0.5 * (e1 + e2)
    return torch.where(a >= 0.5, ib, 0.5 * ib * (e1 - e2) / p), p


class _LaplaceBits(torch.autograd.Function):
    """``laplace_bits(y, spread(beta, sizes))`` with ``beta`` one scale per tensor, and a hand-written backward
    pass: a few whole-vector operations instead of autograd's graph of a dozen, which matters when the
    vector is millions of latents (the per-tensor terms are computed once per tensor, not per element,
    and the exponentials of the forward pass are kept for the backward one instead of recomputed).
    With ``weights`` (one per tensor) each tensor's bits count that many times in the value (a sample of
    a tensor's rows standing for the whole tensor), while the gradients stay those of the sample's own
    bits: the rows a step draws get their own rate gradient (:meth:`RateTerm._push` gives the others')."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, beta: torch.Tensor, sizes: List[int],   # type: ignore[override]
                *weighted: torch.Tensor) -> torch.Tensor:
        weights = weighted[0] if weighted else None
        ctx.sizes, ctx.extra = sizes, (None,) * len(weighted)
        bits, a, ib, e1, e2 = _laplace_parts(y, beta, sizes)
        ctx.save_for_backward(y, beta, a, ib, e1, e2)
        return bits.sum() if weights is None else (segment_sums(bits, sizes) * weights).sum()

    @staticmethod
    def backward(ctx, g: torch.Tensor):   # type: ignore[override]
        y, beta, a, ib, e1, e2 = ctx.saved_tensors
        d_a, p = _abs_slope(a, ib, e1, e2)                                          # d bits / d|y| (x ln 2)
        ebi = torch.exp(-(1.0 / beta))
        d_ib = torch.where(a >= 0.5, (a - 0.5) - spread(ebi / (1.0 - ebi), ctx.sizes),  # d bits / d(1/beta)
                           -0.5 * ((0.5 - a) * e1 + (0.5 + a) * e2) / p)
        scale = g / _LN2
        d_beta = segment_sums(d_ib, ctx.sizes) * (-(1.0 / beta) ** 2)
        return (scale * d_a * torch.sign(y), scale * d_beta, None) + ctx.extra


class _Rows(torch.autograd.Function):
    """Rows ``rows`` of the parameter ``p`` (a leaf), whose gradient is added to those rows of ``p.grad``
    in place: autograd's own (a dense zero tensor of ``p``'s size, filled and then added) would pass over
    every element of ``p``, which is what a rate term over sampled rows saves."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:   # type: ignore[override]
        ctx.p, ctx.rows = p, rows
        return p.detach().index_select(0, rows)

    @staticmethod
    def backward(ctx, g: torch.Tensor):   # type: ignore[override]
        p = ctx.p
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.index_add_(0, ctx.rows, g)
        return None, None


def histogram_bits(q: torch.Tensor) -> float:
    """Bits of the integer symbols ``q`` coded with their own histogram: the empirical entropy plus the
    count table (about 16 bits per value in [min, max], or 32 per distinct value when that is fewer)."""
    q = q.reshape(-1).long()
    lo = int(q.min())
    counts = torch.bincount(q - lo).double()
    used = counts[counts > 0]
    n = float(q.numel())
    entropy = float(-(used * torch.log2(used / n)).sum())
    return entropy + min(16.0 * counts.numel(), 32.0 * used.numel())


def _context_bits(q: torch.Tensor, shape: torch.Size) -> float:
    """The context coder's bits for a latent map (3-D, large enough to be context-coded), else infinity."""
    if len(shape) != 3 or q.numel() < MIN_CONTEXT_SIZE:
        return math.inf
    return context_entropy_bits(q.reshape(shape).long().cpu().numpy())


@dataclass(frozen=True)
class RateTermConfig:
    pixels: int                          # the rate is bits / pixels (bpp of the whole input)
    target_bits: Optional[float] = None  # the weights' budget; lambda is controlled to meet it
    lam: Optional[float] = None          # a fixed lambda (--lambda) instead of the controller
    start: float = 0.75                  # fraction of the fit's steps before the rate term starts
    step_lr: float = 0.02                # Adam learning rate of the log-steps
    lam_rate: float = 0.1                # dual-ascent rate of log lambda
    lam_init: float = 1e-3               # lambda if the calibration at the start finds no balance
    init_bits: float = 6.0               # bits per parameter the steps start at without a target
    noise_until: Optional[float] = None  # fraction of the steps before which the network sees w + s*u, u ~ U(-1/2, 1/2)
    check_coded: bool = False            # steer by the coder's measured size (see CODED_CHECK_STEPS), not the estimate

    def __post_init__(self) -> None:
        if self.lam is None and self.target_bits is None:
            raise ValueError("the rate term needs a fixed lambda or a target size")
        if self.noise_until is not None and not 0.0 <= self.noise_until <= 1.0:
            raise ValueError(f"noise_until must be a fraction of the steps, got {self.noise_until}")
        if self.lam is not None and not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ValueError(f"lambda must be a finite number >= 0, got {self.lam}")


class _Spread(torch.autograd.Function):
    """One value per tensor -> one per element (:func:`spread`), with a backward pass that sums each
    tensor's contiguous run of gradients: indexing's own backward scatters millions of elements into a
    few slots and measured 5-10x slower on the CPU (latent grids have millions of elements)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, sizes: List[int]) -> torch.Tensor:   # type: ignore[override]
        ctx.sizes = sizes
        return spread(v, sizes)

    @staticmethod
    def backward(ctx, g: torch.Tensor):   # type: ignore[override]
        return segment_sums(g, ctx.sizes), None


def _rows(t: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
    """``t`` whole, or its rows ``rows``."""
    return t if rows is None else t.index_select(0, rows)


def _put(p: torch.Tensor, v: torch.Tensor, rows: Optional[torch.Tensor]) -> None:
    """Write the flat values ``v`` into the parameter ``p`` whole, or into its rows ``rows``."""
    if rows is None:
        p.copy_(v.view(p.shape))
    else:
        p.index_copy_(0, rows, v.view((int(rows.numel()),) + tuple(p.shape[1:])))


def spread(v: torch.Tensor, sizes: List[int]) -> torch.Tensor:
    """``v[i]`` repeated ``sizes[i]`` times, one run after the other: the same values as indexing ``v`` with
    each element's tensor number, without reading an index per element (4.4M latents: 0.25 ms against
    10 ms on this project's CPU)."""
    return torch.cat([v[i].expand(n) for i, n in enumerate(sizes)]) if sizes else v[:0]


def segment_sums(v: torch.Tensor, sizes: List[int]) -> torch.Tensor:
    """Sums of consecutive runs of ``sizes`` elements of the flat ``v``."""
    return torch.stack([c.sum() for c in v.split(sizes)])


def latent_weights(sensitivity: Optional[List[float]]) -> Optional[List[float]]:
    """Relative starting steps of latent maps from the mean curvature ``v`` of the distortion in each
    (the diagonal of its Gauss-Newton matrix averaged over the map; None: no weights).  Quantizing a map
    of ``n`` values with step ``s`` adds about ``n v s^2 / 12`` to the distortion, and a finer step costs
    about ``n log2(1 / s)`` bits more, so at a given total rate the distortion is least where ``s^2 v``
    is the same for every map: weights ``1 / sqrt(v)``, scaled to a geometric mean of 1 over the maps
    with a curvature.  A map without one (the output does not depend on it yet) gets the largest weight
    of the others."""
    if sensitivity is None:
        return None
    seen = [v for v in sensitivity if v > 0 and math.isfinite(v)]
    if not seen:
        return None
    mean_log = sum(math.log(v) for v in seen) / len(seen)
    least = math.exp(0.5 * (mean_log - math.log(min(seen))))
    return [math.exp(0.5 * (mean_log - math.log(v))) if v > 0 and math.isfinite(v) else least
            for v in sensitivity]


class RateTerm:
    """Learned per-tensor steps, the rate estimate and lambda, for one model's parameters.

    The parameters are handled as one flat vector, the tensors' elements one after the other (their
    sizes say where each begins), so a step of the fit costs a few whole-vector operations, not a few
    per tensor."""

    def __init__(self, cfg: RateTermConfig, model: nn.Module):
        self.cfg = cfg
        params = list(model.named_parameters())
        self.names: List[str] = [n for n, _ in params]
        self._shapes = [p.shape for _, p in params]
        self._sizes = [p.numel() for _, p in params]
        self._counts = torch.tensor(self._sizes).float().clamp_min(1.0)
        self.log_step = torch.zeros(len(self.names), requires_grad=True)
        lam = cfg.lam if cfg.lam is not None else cfg.lam_init
        self.log_lam = torch.tensor(math.log(max(lam, 1e-30)))
        self.active = False
        self._calibrated = False
        self._ratio = 1.0           # coded size / estimate, re-measured every CODED_CHECK_STEPS steps
        self._since_check = CODED_CHECK_STEPS - 1   # the first step of the term measures
        self.opt: Optional[torch.optim.Optimizer] = None
        self._floats: Optional[List[torch.Tensor]] = None   # the float weights while swapped out (swap_in)
        self._resid: Optional[torch.Tensor] = None          # round(w/s) - w/s of the swapped-in weights
        self._picked: Optional[List[Optional[torch.Tensor]]] = None   # the step's sampled rows (swap_in)
        self._swapped: List[int] = self._sizes                         # elements swapped in, per parameter
        self.sampled = False            # whether any step estimated the rate from sampled rows
        # data-parallel fits: averages gradients over the ranks in place (set by the fitting loop)
        self.reduce: Optional[Callable[[List[torch.Tensor]], None]] = None

    def _to(self, device: torch.device) -> None:
        """Move the term to the model's device (the fit moves the model after the term was made)."""
        self._counts = self._counts.to(device)
        self.log_step = self.log_step.detach().to(device).requires_grad_(True)
        self.log_lam = self.log_lam.to(device)

    # ----------------------------------------------------------------------------------- set-up
    def start_step(self, total: int) -> int:
        return min(int(self.cfg.start * total), max(total - 1, 0))

    def noisy(self, step: int, total: int) -> bool:
        """Whether step ``step`` of ``total`` runs the network on noisy weights instead of rounded ones."""
        return self.cfg.noise_until is not None and step < int(self.cfg.noise_until * total)

    @torch.no_grad()
    def begin(self, model: nn.Module, sensitivity: Optional[Dict[str, float]] = None) -> None:
        """Turn the term on: steps where a Laplace of each tensor's spread costs the target bits per value
        (at least 1), and a model's latent maps (``latent_names``) coarser where the budget needs it
        (:meth:`_latent_start`).  ``sensitivity``: per parameter name, the mean curvature of the distortion
        over its elements (:func:`nervcodec.fit.fit.curvature`), which weighs the latent maps' steps against
        each other (:func:`latent_weights`); without it they share one step."""
        self._to(next(model.parameters()).device)
        n = sum(self._sizes)
        if self.cfg.target_bits is not None:
            side = TENSOR_SIDE_BITS * len(self.names)
            b = float(np.clip((self.cfg.target_bits - side) / max(n, 1), 1.0, 12.0))
        else:
            b = self.cfg.init_bits
        stats = [_Sampled(p) for _, p in model.named_parameters()]
        # a Laplace of scale beta (in steps) costs about log2(2 e beta) bits per symbol
        steps = [max(t.spread * 2 * math.e / 2 ** b if t.spread > 0 else 1e-3, 1e-6) for t in stats]
        names = set(getattr(model, "latent_names", tuple)())
        latent = [i for i, name in enumerate(self.names) if name in names]
        if latent and self.cfg.target_bits is not None:
            weights = None if sensitivity is None else [sensitivity.get(self.names[i], 0.0) for i in latent]
            steps = self._latent_start(stats, steps, latent, self.cfg.target_bits - side, latent_weights(weights))
        for i, step in enumerate(steps):
            self.log_step[i] = math.log(step)
        self.opt = torch.optim.Adam([self.log_step], lr=self.cfg.step_lr, betas=STEP_BETAS)
        self.active = True

    @staticmethod
    def _latent_start(stats: List["_Sampled"], steps: List[float], latent: List[int], budget: float,
                      weights: Optional[List[float]] = None) -> List[float]:
        """The starting steps with the latent maps (``latent``: their indices) made coarser where the budget
        needs it: one scale ``s`` and each map's step ``max(its own, min(s w, 2 max|w|))`` (no coarser than
        what makes the map all zero), ``w`` the map's weight (:func:`latent_weights`; 1 without weights),
        ``s`` the finest at which the Laplace estimate of every tensor's rounded symbols fits ``budget``.
        Starting every latent at the network's bits per value instead put a large clip (bikes: 62M latents,
        0.01 bit each to spend) 60x over its budget; the steps can grow only about 2 % a step, so lambda's
        controller wound up until it rounded the network to zero before the latents had shed their bits
        (docs/benchmarks.md, "Why the grids' fits collapsed on bikes")."""
        chosen = set(latent)
        budget -= sum(t.bits(steps[i]) for i, t in enumerate(stats) if i not in chosen)
        maps = [stats[i] for i in latent]
        w = [1.0] * len(latent) if weights is None else weights

        def at(s: float) -> List[float]:
            return [max(steps[i], min(s * wi, 2.0 * m.top)) for i, m, wi in zip(latent, maps, w)]

        def bits(s: float) -> float:
            return sum(m.bits(st) for m, st in zip(maps, at(s)))

        out = list(steps)
        if bits(0.0) <= budget:      # the budget holds them all at their own steps
            return out
        lo = math.log(1e-6 / max(w))
        hi = math.log(max(max(2.0 * m.top / wi for m, wi in zip(maps, w)), 1e-6))
        for _ in range(LATENT_START_ITERATIONS):   # bits fall as s grows: bisect on log s
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if bits(math.exp(mid)) <= budget else (mid, hi)
        for i, st in zip(latent, at(math.exp(hi))):
            out[i] = st
        return out

    # ----------------------------------------------------------------------------------- the terms
    def _steps(self) -> torch.Tensor:
        """The steps as the file stores them (rounded up to float16), straight-through for the gradient."""
        s = self.log_step.exp().clamp(MIN_STEP, 65504.0)
        h = s.detach().half()
        up = (h.view(torch.int16) + 1).view(torch.float16)   # the next float16 up (positive values)
        s16 = torch.where(h.float() < s.detach(), up.float(), h.float())
        return s + (s16 - s).detach()

    def _per_element(self, v: torch.Tensor) -> torch.Tensor:
        return _Spread.apply(v, self._sizes)

    def _symbols(self, model: nn.Module) -> tuple:
        """(w / s, s), element by element over every parameter, differentiable in both."""
        flat = torch.cat([p.reshape(-1) for _, p in model.named_parameters()])
        s = self._per_element(self._steps())
        return flat / s, s

    def _bits(self, x: torch.Tensor, noise: bool) -> torch.Tensor:
        """Bits of the symbols ``x`` under each tensor's maximum-likelihood Laplace, plus side information."""
        beta = (segment_sums(x.abs(), self._sizes) / self._counts).clamp_min(MIN_SCALE)
        return self._laplace(x, beta, self._sizes, noise)

    def _laplace(self, x: torch.Tensor, beta: torch.Tensor, sizes: List[int], noise: bool,
                 *weights: torch.Tensor) -> torch.Tensor:
        """Bits of the symbols ``x`` (noisy or rounded) under the per-tensor scales ``beta``, plus side
        information (``weights``: see :class:`_LaplaceBits`)."""
        y = x + (torch.rand_like(x) - 0.5) if noise else torch.round(x)
        return _LaplaceBits.apply(y, beta, sizes, *weights) + TENSOR_SIDE_BITS * len(self.names)

    # A step over sampled rows (``rows``: parameter name -> rows, from VideoModel.rate_rows), for tensors
    # that follow the video's length (latent grids' per-frame maps: about nine tenths of their latents, of
    # which a step draws a few frames):
    # * the estimate (what lambda's controller sees): those tensors enter the flat vector with the rows
    #   the batch reads, their bits counted numel / sampled times (unbiased over the fit's random order of
    #   frames), under the whole tensor's Laplace scale (without a gradient: at the maximum-likelihood
    #   scale the bits' derivative in it is about zero);
    # * the latents: the rows drawn get the rate's own gradient, and every other row, at every step, the
    #   rate's gradient at a noisy draw of its symbols, one hand-written pass (:meth:`_push`): what the
    #   whole term would give it, noise included.  The unbiased alternative, the rows drawn getting
    #   numel / sampled times their gradient and the others none, fails: Adam divides each latent's step
    #   by its recent gradient's size, so a push 60 times stronger once every 60 steps moves a latent about
    #   sqrt(60) = 8 times as far as one push, not 60; the rate is 8 times weaker to Adam, and the
    #   controller winds lambda up until every latent is zero (docs/benchmarks.md, "A rate term over the
    #   frames a step draws");
    # * the steps of those tensors: the rate's gradient through every row, from the same pass.
    # Per step this costs the term over the rows drawn plus about a dozen passes over the sampled tensors,
    # instead of two dozen passes and the swaps over every latent.
    def _sampled(self, rows: Optional[Dict[str, torch.Tensor]]) -> Optional[List[Optional[torch.Tensor]]]:
        """Per parameter, the rows sampled this step (None: the whole tensor); None when none is sampled."""
        if not rows:
            return None
        picked = [rows.get(name) for name in self.names]
        return picked if any(r is not None for r in picked) else None

    def _sizes_of(self, picked: List[Optional[torch.Tensor]]) -> List[int]:
        return [n if r is None else int(r.numel()) * (n // max(int(shape[0]), 1))
                for n, r, shape in zip(self._sizes, picked, self._shapes)]

    @torch.no_grad()
    def _whole_scales(self, params: List[torch.Tensor], picked: List[Optional[torch.Tensor]]) -> torch.Tensor:
        """Per parameter, the Laplace scale of all of its symbols, mean ``|w / s|`` (at least ``MIN_SCALE``),
        where its rows are sampled (``MIN_SCALE`` elsewhere): what the estimate and the push of a sampled tensor use."""
        l1 = torch.stack([torch.linalg.vector_norm(p.detach().reshape(-1), 1) if r is not None
                          else p.new_zeros(()) for p, r in zip(params, picked)]).float()
        return (l1 / (self._counts * self._steps().detach())).clamp_min(MIN_SCALE)

    def _sampled_bits(self, model: nn.Module, picked: List[Optional[torch.Tensor]], noise: bool,
                      scales: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`bits` from the sampled rows of some tensors (see above), differentiable in the weights
        and the steps (``scales``: :meth:`_whole_scales`, when the caller has them)."""
        params = [p for _, p in model.named_parameters()]
        sizes = self._sizes_of(picked)
        flat = torch.cat([(p if r is None else _Rows.apply(p, r)).reshape(-1) for p, r in zip(params, picked)])
        steps = self._steps()
        counts = torch.tensor(sizes, device=flat.device).float().clamp_min(1.0)
        is_sampled = torch.tensor([r is not None for r in picked], device=flat.device)
        # a sampled tensor's step takes the rate's gradient over all of its rows from :meth:`_push` instead
        x = flat / _Spread.apply(torch.where(is_sampled, steps.detach(), steps), sizes)
        beta = segment_sums(x.abs(), sizes) / counts
        whole = scales if scales is not None else self._whole_scales(params, picked)
        beta = torch.where(is_sampled, whole, beta).clamp_min(MIN_SCALE)
        return self._laplace(x, beta, sizes, noise, self._counts / counts)

    def terms(self, model: nn.Module, noise: bool = True) -> tuple:
        """(every parameter as the decoder will see it, estimated bits): one pass over the weights.

        The weights are differentiable in the weight and the step (straight-through rounding); the bits
        are of noisy symbols while fitting (``noise``), of the rounded ones to measure."""
        x, s = self._symbols(model)
        w_hat = s * (x + (torch.round(x) - x).detach())
        weights = {name: t.view(shape) for name, t, shape in zip(self.names, w_hat.split(self._sizes), self._shapes)}
        return weights, self._bits(x, noise)

    # The fit's path: the quantized weights are written into the parameters for the forward and
    # backward passes, which then run exactly as a plain step (functional_call over a dict of new
    # weight tensors measured 1.5-2x slower per step on the CPU), and the float weights go back before
    # the optimizer's step.  The gradients are those of :meth:`terms`: the distortion's gradient at
    # the quantized weights is the float weights' (straight through) and, times round(w/s) - w/s,
    # the steps' (LSQ); the rate's comes from autograd on the float weights.
    @torch.no_grad()
    def swap_in(self, model: nn.Module, noise: bool = False,
                rows: Optional[Dict[str, torch.Tensor]] = None) -> None:
        """Write ``s * round(w / s)`` into every parameter, keeping the float weights aside; with
        ``noise``, ``w + s * u`` (``u`` uniform in [-1/2, 1/2]): the smooth stand-in for rounding that
        latents need early in a fit (their gradient then sees every value, not a staircase).

        With ``rows`` (:meth:`VideoModel.rate_rows` of the step's batch) only those rows of those tensors
        are written, the only ones the step's forward pass reads, and the rate that :meth:`swap_out`
        returns is estimated from them (see :meth:`_sampled_bits`)."""
        params = [p for _, p in model.named_parameters()]
        self._picked = self._sampled(rows)
        picked = self._picked or [None] * len(params)
        sizes = self._swapped = self._sizes if self._picked is None else self._sizes_of(self._picked)
        flat = torch.cat([_rows(p, r).reshape(-1) for p, r in zip(params, picked)])
        s = self._per_element(self._steps()) if self._picked is None else spread(self._steps(), sizes)
        x = flat / s
        r = x + (torch.rand_like(x) - 0.5) if noise else torch.round(x)
        self._floats = list(flat.split(sizes))   # ``flat`` is already a copy of the float weights
        self._resid = r - x
        for p, v, rs in zip(params, (s * r).split(sizes), picked):
            _put(p, v, rs)
        self.sampled = self.sampled or self._picked is not None

    def swap_out(self, model: nn.Module) -> torch.Tensor:
        """After the distortion's backward pass: give the steps their share of its gradient, put the
        float weights back, and return their estimated bits (differentiable in the weights and steps)."""
        params = [p for _, p in model.named_parameters()]
        picked = self._picked or [None] * len(params)
        with torch.no_grad():
            g = torch.cat([_rows(p.grad if p.grad is not None else torch.zeros_like(p), r).reshape(-1)
                           for p, r in zip(params, picked)])
            g_steps = segment_sums(g * self._resid, self._swapped)
            for p, f, r in zip(params, self._floats, picked):
                _put(p, f, r)
            if self._picked is not None:
                scales = self._whole_scales(params, picked)
                g_steps = g_steps + self._push(params, picked, scales)
        self._floats = self._resid = None
        self._steps().backward(g_steps)        # through the float16 rounding and exp, into log_step.grad
        if self._picked is not None:
            return self._sampled_bits(model, self._picked, True, scales)
        return self.bits(model)

    @torch.no_grad()
    def _push(self, params: List[torch.Tensor], picked: List[Optional[torch.Tensor]],
              scales: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Add to the gradient of the rows not drawn this step the rate's gradient (times lambda / pixels) at
        one noisy draw of each symbol, ``y = w / s + u``, as the whole term would give it (the same
        formula as :class:`_LaplaceBits`' backward pass, written out for one tensor at a time); return, per
        tensor, the steps' rate gradient over all of its rows (drawn or not), ``-sum(g x)`` with
        ``x = w / s``: a sampled tensor's step takes it instead of the sampled estimate's.

        Each latent then sees the same gradient as under the whole term, noise included; a noise-free
        push (the rate's expected gradient) moved the latents differently under Adam, whose step is the
        gradient over its running size (docs/benchmarks.md, "A rate term over the frames a step draws")."""
        steps = self._steps().detach()
        scales = scales if scales is not None else self._whole_scales(params, picked)
        lam = self.lam.detach()
        g_steps = torch.zeros_like(steps)
        for i, (p, r) in enumerate(zip(params, picked)):
            if r is None or p.grad is None:
                continue
            s = steps[i]
            ib = 1.0 / scales[i]
            x = p / s
            y = x + (torch.rand_like(x) - 0.5)
            a = y.abs()
            d_a, _ = _abs_slope(a, ib, *_bin_exps(a, ib))     # d bits / d|y| (x ln 2), as _LaplaceBits' backward
            push = (d_a * torch.sign(y)).mul_(lam / (self.cfg.pixels * _LN2 * s))
            g_steps[i] = -(push * x).sum()
            push.index_fill_(0, r, 0.0)
            p.grad.add_(push)
        return g_steps

    def rate_loss(self, bits: torch.Tensor) -> torch.Tensor:
        """lambda * bpp for the current step (``bits`` from :meth:`swap_out`, after which ``log_step.grad``
        holds the distortion's gradient, which lambda's first calibration needs)."""
        if not self._calibrated and self.cfg.lam is None:
            g_d = self.log_step.grad.clone() if self.log_step.grad is not None else torch.zeros_like(self.log_step)
            self._calibrate(g_d, bits)
        return self.lam.detach() * bits / self.cfg.pixels

    def quantized(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        """Every parameter as the decoder will see it."""
        return self.terms(model, noise=False)[0]

    def bits(self, model: nn.Module, noise: bool = True) -> torch.Tensor:
        """Estimated coded bits of every parameter: noisy symbols while fitting, rounded ones to measure."""
        return self._bits(self._symbols(model)[0], noise)

    @property
    def lam(self) -> torch.Tensor:
        return self.log_lam.exp()

    def _calibrate(self, g_d: torch.Tensor, bits: torch.Tensor) -> None:
        """Start lambda where the steps are in balance: the least-squares lambda that cancels the
        distortion's pull ``g_d`` on the log-steps with the rate's push (one extra backward pass, once)."""
        if self.reduce is not None:   # each rank saw a share of the batch: the pull of the whole batch
            self.reduce([g_d])
        g_r, = torch.autograd.grad(bits / self.cfg.pixels, self.log_step, retain_graph=True)
        lam = float(-(g_d * g_r).sum() / (g_r * g_r).sum().clamp_min(1e-30))
        if math.isfinite(lam) and lam > 0:
            self.log_lam = torch.full_like(self.log_lam, math.log(lam))
        self._calibrated = True

    def after_step(self, bits: torch.Tensor, model: Optional[nn.Module] = None) -> None:
        """Move the steps, and lambda towards the budget (on the device: no synchronisation, except every
        CODED_CHECK_STEPS steps when ``model`` is given, to re-measure the coder's size against the estimate)."""
        assert self.opt is not None
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.cfg.lam is None:
            if model is not None and self.cfg.check_coded:
                self._since_check += 1
                if self._since_check >= CODED_CHECK_STEPS:
                    self._since_check = 0
                    if self._picked is None:
                        est = float(bits.detach())
                    else:   # a sampled step's estimate stands for the whole only on average: measure the whole
                        with torch.no_grad():
                            est = float(self.bits(model))
                    self._ratio = self.coded_bits(model) / est if est > 0 else 1.0
            target = self.cfg.target_bits * (1.0 - CODED_MARGIN if self.cfg.check_coded else 1.0)
            err = (bits.detach() * self._ratio / target - 1.0).clamp(-0.5, 0.5)
            self.log_lam = self.log_lam + self.cfg.lam_rate * err

    @torch.no_grad()
    def coded_bits(self, model: nn.Module) -> float:
        """Close to what the entropy coder will spend on the rounded symbols: per tensor the cheaper of the
        Laplace estimate and the histogram's (:func:`histogram_bits`), plus the side information."""
        x = torch.round(self._symbols(model)[0])
        beta = (segment_sums(x.abs(), self._sizes) / self._counts).clamp_min(MIN_SCALE)
        lap = segment_sums(laplace_bits_each(x, beta, self._sizes), self._sizes).tolist()
        return sum(min(lp, histogram_bits(q), _context_bits(q, shape)) if q.numel() else 0.0
                   for lp, q, shape in zip(lap, x.split(self._sizes), self._shapes)) \
            + TENSOR_SIDE_BITS * len(self.names)

    # ----------------------------------------------------------------------------------- results
    @torch.no_grad()
    def estimate_bits(self, model: nn.Module) -> float:
        """The estimate with rounded symbols: what the weights section should cost."""
        return float(self.bits(model, noise=False))

    def steps(self) -> Dict[str, np.ndarray]:
        """Each tensor's step as stored in the file (float16)."""
        s = self._steps().detach().cpu().numpy().astype(np.float16)   # exact: already float16 values
        return {name: s[i:i + 1] for i, name in enumerate(self.names)}

    def state_dict(self) -> Dict[str, Any]:
        return {"log_step": self.log_step.detach().cpu(), "log_lam": self.log_lam.detach().cpu(),
                "ratio": self._ratio, "since_check": self._since_check, "active": self.active,
                "opt": self.opt.state_dict() if self.opt is not None else None}

    def load_state_dict(self, state: Dict[str, Any], model: nn.Module) -> None:
        self.log_step, self.log_lam = state["log_step"], state["log_lam"]
        self._to(next(model.parameters()).device)
        self.active = bool(state["active"])
        self._ratio, self._since_check = float(state.get("ratio", 1.0)), int(state.get("since_check", 0))
        self._calibrated = self.active
        self.opt = None
        if self.active:
            self.opt = torch.optim.Adam([self.log_step], lr=self.cfg.step_lr, betas=STEP_BETAS)
            if state.get("opt") is not None:
                self.opt.load_state_dict(state["opt"])
