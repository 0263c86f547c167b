"""Encode stage 3, code: float weights -> integer symbols -> the file's bytes.

Quantization uses the steps the rate-aware fit learned (so the symbols are
exactly the rounding the fit simulated; a file over its --bpp budget has every
step scaled up by one common factor until it fits, see :func:`_trim`), or, with ``--quant-bits``, fixed-precision
steps with each tensor's mode chosen by its real coded size; the signed symbols
are entropy-coded into the weights section; the header and sections are
packed into the bytes that stage 4 writes (a file left far under its budget gives the rest to its
keyframes, see :func:`_respend`).  The encoder then rebuilds the network
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
from .keyframes import KeyframePlan, encode_keyframes
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
    warnings: Tuple[str, ...] = ()     # a file over its --bpp budget, or far under it, says so
    keyframe_quality: Optional[int] = None  # the quality its keyframes were coded at (the codec's scale)
    keyframes_recoded: bool = False    # coded again after the fit with the budget it left (_respend)

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
    note(progress, f"coded: {len(data)} bytes; decoding its {plural(plan.num_frames, 'frame')} to measure them")
    model = build_network(plan.spec, plan.config, weights)
    kf = plan.keyframes
    psnr, psnr_y = _measure(plan, model, kf)
    if problem is None and fitted.steps is not None:
        respent = _respend(plan, model, sections, header, len(data), psnr, progress)
        if respent is not None:
            kf, sections, data, psnr, psnr_y = respent
        problem = _budget_unspent(plan, len(data), len(weights), kf if respent is not None else None)
    if problem is not None:
        warnings.warn(problem, NervCodecWarning, stacklevel=2)
    notes: Tuple[str, ...] = (problem,) if problem is not None else ()
    return CodedFile(symbols, sections, data, psnr, psnr_y, notes,
                     keyframe_quality=kf.quality if kf is not None else None,
                     keyframes_recoded=kf is not plan.keyframes)


def _measure(plan: EncodePlan, model: torch.nn.Module, kf: Optional[KeyframePlan]) -> Tuple[float, float]:
    """(PSNR-YUV, PSNR-Y) of what the decoder reconstructs from ``model`` and the keyframes ``kf``."""
    scores = FrameScores(plan.infos[0].pix_fmt)
    for vi, f, planes in synthesize(model, plan.layout, plan.infos, plan.layout.items(plan.infos), plan.device,
                                    batch=max(plan.fit.batch, 8), keyframes=kf.source if kf else None,
                                    keyframe_planes=kf.planes if kf else None):
        scores.add([p[f] for p in plan.frames[vi].planes], planes)
    return scores.psnr_yuv, scores.psnr_y


def _respend(plan: EncodePlan, model: torch.nn.Module, sections: Dict[int, bytes], header: bytes, size: int,
             psnr: float, progress: bool) -> Optional[tuple]:
    """A file far under its --bpp budget (at most UNSPENT_FILE of it: the rate-aware fit found the network
    worth fewer bytes than it was given, as short fits of the latent grids do) whose keyframes were coded
    to a rate gives what is left to them: they are coded again, at the highest quality that fits their
    bytes plus the rest of the budget, and the file with them is kept if what decodes from it, the same
    network on the new keyframes, scores a higher PSNR.  Keyframes already at their codec's highest quality
    are left as they are, without coding them again.  (keyframes, sections, file, PSNR-YUV, PSNR-Y),
    or None when the file stays as it is."""
    kf = plan.keyframes
    if kf is None or kf.top or plan.cfg.keyframe_quality is not None or not _far_under(plan, size):
        return None
    note(progress, f"{size} bytes, {100 * size / plan.budget:.0f} % of the budget: coding the keyframes again "
                   f"with the {plan.budget - size} bytes left")
    new = encode_keyframes(plan.infos, plan.seen_frames, plan.layout, plan.cfg, None,
                           target=len(kf.section) + plan.budget - size, local=True, above=kf.quality)
    secs = {**sections, SECTION_KEYFRAMES: new.section}
    data = pack(header, secs)
    if new.quality <= kf.quality or len(data) > plan.budget:   # no quality above the old one fits
        return None
    p, p_y = _measure(plan, model, new)
    note(progress, f"keyframes at quality {new.quality} instead of {kf.quality}: {len(data)} bytes, PSNR-YUV "
                   f"{p:.2f} dB against {psnr:.2f} ({'kept' if p > psnr else 'not kept'})")
    return (new, secs, data, p, p_y) if p > psnr else None


UNSPENT_FILE = 0.9      # of the --bpp budget: a file at most this full ...
UNSPENT_WEIGHTS = 0.1   # ... whose weights took at most this share of their budget is said to be so


def _far_under(plan: EncodePlan, size: int) -> bool:
    """Whether a file of ``size`` bytes is at most UNSPENT_FILE of its --bpp budget (never under --lambda,
    which sets no budget for the file to fill)."""
    return plan.budget is not None and plan.cfg.lam is None and size < UNSPENT_FILE * plan.budget


def _budget_unspent(plan: EncodePlan, size: int, weights: int, recoded: Optional[KeyframePlan] = None) -> Optional[str]:
    """What a --bpp file far under its budget whose weights took a sliver of their share says (None for any
    other): the rate-aware fit found the network worth fewer bytes than it was given (latent grids at 300
    steps: weights of 156-177 bytes where 29-39 kB were theirs, every latent zero; with a fixed lambda of
    1e-6 the same fit kept 163 kB for 0.27 dB; docs/benchmarks.md, "What a short grid fit's network is worth"),
    and its keyframes could not take the rest (``recoded``: they took what their codec's next quality allowed)."""
    if not _far_under(plan, size) or not plan.weight_budget or weights >= UNSPENT_WEIGHTS * plan.weight_budget:
        return None
    kept = (f"; the keyframes were coded again with the rest, at quality {recoded.quality}, the highest that fits"
            if recoded is not None else "")
    return (f"the file takes {size} bytes, {100 * size / plan.budget:.0f} % of its {plan.target_bpp:g} bpp budget, and "
            f"its network {weights} of the {plan.weight_budget} bytes left to it: the rate-aware fit found the network "
            f"worth less than its bytes (a short fit gains little over the keyframes; a longer --preset fits a "
            f"network worth more){kept}")


def _over_budget(plan: EncodePlan, size: int, fixed: bool) -> str:
    """What a file that stays over its --bpp budget says about it."""
    why = ("fixed-precision weights (--quant-bits) are not trimmed to a budget; without --quant-bits the "
           "rate-aware fit keeps it"
           if fixed else "no common scale of the learned steps brings it under (the symbols are all zero or the "
                         "steps at float16's largest): raise --bpp")
    return (f"the file takes {size} bytes ({size * 8 / plan.pixels:.4g} bpp), over the {plan.target_bpp:g} bpp "
            f"budget of {plan.budget} bytes: {why}")
