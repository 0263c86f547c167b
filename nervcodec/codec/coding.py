"""Encode stage 3, code: float weights -> integer symbols -> the file's bytes.

Quantization chooses each tensor's scale mode by its real coded size; the
symbols are entropy-coded into the weights section; the header and sections are
packed into the bytes that stage 4 writes.  The encoder then rebuilds the network
from the coded weights section as the decoder does (:func:`~.decode.build_network`)
and runs the decoder's synthesis, so the PSNR it reports is exactly what ``decode``
will produce from the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..container import SECTION_KEYFRAMES, SECTION_WEIGHTS, make_header, pack, pack_weights
from ..entropy import encode_symbols
from ..errors import FitDivergedError
from ..quant import QuantizedTensor, quantize_state
from .decode import build_network
from .fitting import FittedModel
from .plan import EncodePlan
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

    @property
    def weights_bytes(self) -> int:
        return len(self.sections[SECTION_WEIGHTS])

    @property
    def keyframe_bytes(self) -> int:
        return len(self.sections.get(SECTION_KEYFRAMES, b""))


class _CodedSymbols:
    """``encode_symbols`` with memory: choosing each tensor's scale mode codes both candidates,
    and the weights section then reuses the chosen one's bytes instead of coding it again."""

    def __init__(self) -> None:
        self._done: Dict[Tuple[str, Tuple[int, ...], bytes], bytes] = {}

    def __call__(self, symbols: np.ndarray) -> bytes:
        key = (symbols.dtype.str, symbols.shape, symbols.tobytes())
        if key not in self._done:
            self._done[key] = encode_symbols(symbols)
        return self._done[key]


def quantized_state(state: Mapping[str, torch.Tensor], bits: int,
                    coder: Optional[Callable[[np.ndarray], bytes]] = None) -> List[Tuple[str, QuantizedTensor]]:
    """Quantize with each tensor's scale mode chosen by its real coded size."""
    coder = coder or encode_symbols
    return quantize_state(state, bits, coded_size=lambda sym: len(coder(sym)))


def code(plan: EncodePlan, fitted: FittedModel) -> CodedFile:
    """Stage 3: quantize and entropy-code the weights, pack the file, measure what decodes from it."""
    bad = [k for k, v in fitted.state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # the fitting loop catches divergence; this keeps non-finite weights out of any file regardless
        raise FitDivergedError(f"the fitted weights are not finite ({bad[0]}); lower --lr and try again")
    bits = plan.cfg.quant_bits
    coder = _CodedSymbols()
    symbols = tuple(quantized_state(fitted.state, bits, coder))
    weights = pack_weights(list(symbols), coder)
    sections = {SECTION_WEIGHTS: weights}
    if plan.keyframes is not None:
        sections[SECTION_KEYFRAMES] = plan.keyframes.section
    header = make_header(plan.infos, plan.spec, bits, plan.config, plan.layout.to_dict())
    data = pack(header, sections)

    model = build_network(plan.spec, plan.config, weights, bits)
    scores = FrameScores(plan.infos[0].pix_fmt)
    kf = plan.keyframes
    for vi, f, planes in synthesize(model, plan.layout, plan.infos, plan.layout.items(plan.infos), plan.device,
                                    batch=max(plan.fit.batch, 8), keyframes=kf.source if kf else None,
                                    keyframe_planes=kf.planes if kf else None):
        scores.add([p[f] for p in plan.frames[vi].planes], planes)
    return CodedFile(symbols, sections, data, scores.psnr_yuv, scores.psnr_y)
