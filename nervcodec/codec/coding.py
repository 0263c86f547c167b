"""Encode stage 3, code: float weights -> integer symbols -> the file's bytes.

Quantization uses the steps the rate-aware fit learned (so the symbols are
exactly the rounding the fit simulated; a file over its --bpp budget has every
step scaled up by one common factor until it fits, see :func:`_trim`), or, with ``--quant-bits``, fixed-precision
steps with each tensor's mode chosen by its real coded size; the signed symbols
are entropy-coded into the weights section; the header and sections are
packed into the bytes that stage 4 writes.  The encoder then rebuilds the network
from the coded weights section as the decoder does (:func:`~.decode.build_network`)
and runs the decoder's synthesis, so the PSNR it reports is exactly what ``decode``
will produce from the file.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..container import SECTION_KEYFRAMES, SECTION_WEIGHTS, make_header, pack, pack_weights, signed_symbols
from ..errors import FitDivergedError, NervCodecWarning
from ..quant import QuantizedTensor, quantize_fixed, quantize_with_step
from ..quant.quantize import f16_up
from ..textutil import plural
from .decode import build_network
from .fitting import FittedModel
from .plan import EncodePlan
from .progress import note
from .quality import FrameScores
from .synthesis import synthesize

__all__ = ["CodedFile", "code", "quantized_state"]


@dataclass(frozen=True)
class CodedFile:
    """Stage 3's output: the integer symbols, the sections and the whole file as bytes, and the
    quality of what the decoder will reconstruct from them."""

    symbols: Tuple[Tuple[str, QuantizedTensor], ...]
    sections: Dict[int, bytes]
    data: bytes
    psnr: float        # PSNR-YUV (6:1:1, per-frame mean) of the decoder's output
    psnr_y: float
    warnings: Tuple[str, ...] = ()     # a file over its --bpp budget says so

    @property
    def weights_bytes(self) -> int:
        return len(self.sections[SECTION_WEIGHTS])

    @property
    def keyframe_bytes(self) -> int:
        return len(self.sections.get(SECTION_KEYFRAMES, b""))


# Precision of floating tensors that are not learned parameters (buffers), should a model have any.
BUFFER_BITS = 16


class _CodedSymbols:
    """``signed_symbols`` with memory: choosing each tensor's scale mode codes both candidates,
    and the weights section then reuses the chosen one's bytes instead of coding it again."""

    def __init__(self) -> None:
        self._done: Dict[Tuple[str, Tuple[int, ...], bytes], bytes] = {}

    def __call__(self, symbols: np.ndarray) -> bytes:
        key = (symbols.dtype.str, symbols.shape, symbols.tobytes())
        if key not in self._done:
            self._done[key] = signed_symbols(symbols)
        return self._done[key]


def quantized_state(state: Mapping[str, torch.Tensor], steps: Optional[Mapping[str, np.ndarray]],
                    bits: Optional[int], coder: Optional[Callable[[np.ndarray], bytes]] = None,
                    ) -> List[Tuple[str, QuantizedTensor]]:
    """Every floating tensor of ``state``, in order, quantized with its learned step from ``steps``,
    or at ``bits`` of fixed precision (mode chosen by the real coded size under ``coder``)."""
    coder = coder or signed_symbols
    out = []
    for name, t in state.items():
        if not t.is_floating_point():
            continue
        try:
            if steps is not None and name in steps:
                qt = quantize_with_step(t, steps[name])
            else:
                qt = quantize_fixed(t, bits or BUFFER_BITS, lambda sym: len(coder(sym)))
        except ValueError as exc:   # weights beyond 2^30 steps: only a fit gone wrong gets there
            raise FitDivergedError(f"tensor {name} cannot be quantized ({exc}); lower --lr and try again") from None
        out.append((name, qt))
    return out


def _pack(plan: EncodePlan, state, steps, coder, header) -> tuple:
    """(symbols, sections, the whole file) for ``steps`` (learned) or the --quant-bits precision."""
    symbols = tuple(quantized_state(state, steps, plan.cfg.quant_bits, coder))
    sections = {SECTION_WEIGHTS: pack_weights(list(symbols), coder)}
    if plan.keyframes is not None:
        sections[SECTION_KEYFRAMES] = plan.keyframes.section
    return symbols, sections, pack(header, sections)


TRIM_ROUNDS = 12   # bisection rounds of the step scale (each codes the weights once)
F16_MAX = 65504.0      # the largest step a file can store (float16)


def _trim(plan: EncodePlan, fitted: FittedModel, coder, header) -> Optional[tuple]:
    """The file over its --bpp budget (the fit's rate estimate is within about 1%, either way):
    every learned step is scaled by the smallest common factor (steps rounded up to float16, at most
    its largest value) that brings the whole file to the budget or under, so a target rate is a budget
    the file keeps: the first of 2, 4, 8, ... that does (2 unless the fit was far from its rate, as a
    very short one is), then bisection below it.  None when none does: every symbol of the learned
    tensors is zero, or every step is at float16's largest, and the file is still over (steps are at
    least float16's smallest, so the doubling ends within 41 rounds)."""
    def at(f: float) -> tuple:
        steps = {k: f16_up(np.minimum(v.astype(np.float32) * f, F16_MAX)) for k, v in fitted.steps.items()}
        return _pack(plan, fitted.state, steps, coder, header)

    smallest = min(float(f16_up(v.astype(np.float32)).min()) for v in fitted.steps.values())   # >= float16's smallest
    lo, hi = 1.0, 2.0
    best = at(hi)
    while len(best[2]) > plan.budget:
        if smallest * hi >= F16_MAX or all(not q.symbols.any() for name, q in best[0] if name in fitted.steps):
            return None     # nothing left that a larger step would shrink
        lo, hi = hi, 2 * hi
        best = at(hi)
    for _ in range(TRIM_ROUNDS):
        mid = (lo + hi) / 2
        cand = at(mid)
        if len(cand[2]) <= plan.budget:
            hi, best = mid, cand
        else:
            lo = mid
    return best


def code(plan: EncodePlan, fitted: FittedModel, progress: bool = False) -> CodedFile:
    """Stage 3: quantize and entropy-code the weights, pack the file, measure what decodes from it
    (``progress``: say each of these on stderr as it starts: minutes on a large clip)."""
    bad = [k for k, v in fitted.state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # the fitting loop catches divergence; this keeps non-finite weights out of any file regardless
        raise FitDivergedError(f"the fitted weights are not finite ({bad[0]}); lower --lr and try again")
    coder = _CodedSymbols()
    header = make_header(plan.infos, plan.spec, plan.cfg.quant_code, plan.config, plan.layout.to_dict())
    note(progress, f"coding the file ({plural(fitted.params, 'parameter')})")
    symbols, sections, data = _pack(plan, fitted.state, fitted.steps, coder, header)
    problem: Optional[str] = None   # what the file says of its size against its budget, if anything
    if plan.budget is not None and plan.cfg.lam is None and len(data) > plan.budget:
        if fitted.steps is not None:
            note(progress, f"{len(data)} bytes, over the budget of {plan.budget}: coding it again with every step "
                           f"scaled up by the smallest common factor that fits")
        trimmed = _trim(plan, fitted, coder, header) if fitted.steps is not None else None
        if trimmed is not None:
            symbols, sections, data = trimmed
        else:
            problem = _over_budget(plan, len(data), fitted.steps is None)
    weights = sections[SECTION_WEIGHTS]
    if problem is None and fitted.steps is not None:
        problem = _budget_unspent(plan, len(data), len(weights))
    if problem is not None:
        warnings.warn(problem, NervCodecWarning, stacklevel=2)
    notes: Tuple[str, ...] = (problem,) if problem is not None else ()

    note(progress, f"coded: {len(data)} bytes; decoding its {plural(plan.num_frames, 'frame')} to measure them")
    model = build_network(plan.spec, plan.config, weights)
    scores = FrameScores(plan.infos[0].pix_fmt)
    kf = plan.keyframes
    for vi, f, planes in synthesize(model, plan.layout, plan.infos, plan.layout.items(plan.infos), plan.device,
                                    batch=max(plan.fit.batch, 8), keyframes=kf.source if kf else None,
                                    keyframe_planes=kf.planes if kf else None):
        scores.add([p[f] for p in plan.frames[vi].planes], planes)
    return CodedFile(symbols, sections, data, scores.psnr_yuv, scores.psnr_y, notes)


UNSPENT_FILE = 0.9      # of the --bpp budget: a file at most this full ...
UNSPENT_WEIGHTS = 0.1   # ... whose weights took at most this share of their budget is said to be so


def _budget_unspent(plan: EncodePlan, size: int, weights: int) -> Optional[str]:
    """What a --bpp file far under its budget whose weights took a sliver of their share says (None for any
    other): the rate-aware fit's controller ended with its rate weight far too high (latent grids on bikes at
    300 steps: weights of 177 bytes where 39 kB were theirs, every latent zero, the file at 63-67 % of its
    target; docs/benchmarks.md, "The rate controller on a short fit")."""
    if plan.budget is None or plan.cfg.lam is not None or not plan.weight_budget:
        return None
    if size >= UNSPENT_FILE * plan.budget or weights >= UNSPENT_WEIGHTS * plan.weight_budget:
        return None
    return (f"the file takes {size} bytes, {100 * size / plan.budget:.0f} % of its {plan.target_bpp:g} bpp budget, and "
            f"its network {weights} of the {plan.weight_budget} bytes left to it: the rate-aware fit ended with its "
            f"rate weight far too high for so short a fit (a longer --preset gives it the steps to settle)")


def _over_budget(plan: EncodePlan, size: int, fixed: bool) -> str:
    """What a file that stays over its --bpp budget says about it."""
    why = ("fixed-precision weights (--quant-bits) are not trimmed to a budget; without --quant-bits the "
           "rate-aware fit keeps it"
           if fixed else "no common scale of the learned steps brings it under (the symbols are all zero or the "
                         "steps at float16's largest): raise --bpp")
    return (f"the file takes {size} bytes ({size * 8 / plan.pixels:.4g} bpp), over the {plan.target_bpp:g} bpp "
            f"budget of {plan.budget} bytes: {why}")
