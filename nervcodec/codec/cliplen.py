"""The keyframe interval of a keyframe-conditioned model, chosen per encode from the rate and the motion.

D-NeRV starts every frame from the cross-fade of its clip's two decoded keyframes and learns a
correction.  The clip length D trades the two parts of that start against each other at a fixed
keyframe budget: halving D doubles the keyframes, so each gets fewer bytes (half with intra
keyframes: 3-6 dB less PSNR from VVC intra on the dev clips; far less lost with the default
inter-coded keyframes), but every other frame sits half as far from a keyframe,
so the cross-fade misses less motion.  Which side wins depends on the content and the rate: the
cross-fade (PSNR-RGB, ``benchmarks/crossfade.py``) at D = 4 beats D = 8 on people_qcif_48f by
0.7 / 2.1 / 3.2 dB at the keyframe budgets of 0.25 / 0.5 / 1.0 bpp, loses 0.1 dB on
carphone_pristine at 0.1 bpp and wins 0.8 / 1.7 dB at 0.2 / 0.4, and wins 2.0 dB on bikes
(fast motion, scene cuts) at 0.04 bpp.  The fitted network then corrects more of a longer clip's
cross-fade, so only a large lead survives the fit (see :data:`SHORTER_CLIP_MARGIN_DB`).

So the planner codes the keyframes for each candidate length at its budget (the search it does
anyway, once per candidate), scores each by the mean per-frame PSNR-RGB of that starting point
-- the decoded keyframes at their positions, the cross-fade elsewhere -- and keeps the longest
unless a shorter one leads by the margin.  The winner's keyframes are the ones the file stores,
so the file is the one ``--clip-len D`` would make.  One length for the whole file (a model has
one clip length); ``--clip-len D`` fixes it.

D-NeRV's candidates are 8, 4 and 2.  D = 2 came with the inter-coded keyframes (``vvc-ra``, the
default since 2026-12-03), whose extra pictures are cheap predicted ones: at the default effort it
gained 3.1 dB on bikes at 0.04 bpp and 0.6 dB on carphone_pristine at 0.2 over D = 4, and was level
on people_qcif_48f at 0.5 (docs/benchmarks.md, "Inter-coded keyframes").  It is weighed by the same
rule against the best longer length, with the margins below, which were measured for 8 against 4
with intra keyframes.  latent-grid-kf has the same candidates and rule (margins not measured for it;
it picked D = 2 at all six dev-clip points, docs/benchmarks.md, "Keyframe-conditioned latent grids").

How large a lead must be depends on how the fit is counted.  In epochs, every candidate makes the
same passes over each frame, and a fixed margin (:data:`SHORTER_CLIP_MARGIN_DB`) was measured.
Under a step budget (the effort presets) a clip of D frames is one step at any D, so a shorter clip
makes fewer passes over each frame, and the network of the longer one has more passes to make up
its worse start with: the more passes, the more it makes up.  There the margin grows with the
longer candidate's passes per frame (:func:`step_margin_db`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..io.video import Frames, VideoInfo
from ..keyframes import yuv_to_rgb
from ..metrics.psnr import frame_mse
from .keyframes import KeyframePlan
from .layout import Layout

__all__ = ["DEFAULT_CLIP_LEN", "SHORTER_CLIP_MARGIN_DB", "ClipLenChoice", "starting_psnr", "choose_clip_len",
           "step_margin_db", "margin_db"]

# The clip length when it is not chosen: with --keyframe-quality or --params (no keyframe budget to
# divide), --holdout, --mask, --cache-dir, and for models without candidates.
DEFAULT_CLIP_LEN = 8

# What a shorter clip's starting point must lead by.  The network corrects more of a longer clip's
# cross-fade: D-NeRV's lead at D = 4 over D = 8 shrank from its starting point's to its decoded
# file's by 1.07 / 1.58 / 1.30 dB PSNR-RGB on people_qcif_48f at 0.25 / 0.5 / 1.0 bpp (150 epochs;
# leads 0.49 / 2.09 / 2.85 dB became -0.58 / +0.51 / +1.55); docs/benchmarks.md, "Clip length".  Their
# mean, 1.3 dB: halving the interval pays when the cross-fade gains more than the network would have
# made up.  (Checked afterwards on carphone_pristine at 0.2 / 0.4 bpp: shrinks of 0.72 / 0.18 dB, and
# the rule's choice was the better file at both.)
SHORTER_CLIP_MARGIN_DB = 1.3

# Under a step budget: how much of a shorter clip's starting lead the longer clip's network made up,
# with D-NeRV at the default effort (2,200 steps, one clip per step), D = 8 against D = 4, PSNR-RGB of
# the decoded files (docs/benchmarks.md, "Clip length"), by the longer clip's passes over each frame:
# bikes at 0.04 bpp, 23 passes: 1.13 dB (a 2.03 dB lead became +0.90 dB); carphone_pristine at 0.4
# bpp, 147 passes: 0.97 dB (1.69 became +0.72); people_qcif_48f at 0.5 and 1.0 bpp, 367 passes: 2.65
# and 3.12 dB (2.09 and 2.85 became -0.56 and -0.27).  Up to 147 passes that is within the epochs
# margin; from there the margin grows linearly in the logarithm of the passes (each doubling of a
# fit adds about as much, as a fit's PSNR grows about linearly in the log of its steps) to 3.2 dB at
# 367 passes, just above the most people's networks made up.  Four points set it; none was held out.
STEP_MARGIN_POINTS = ((147.0, SHORTER_CLIP_MARGIN_DB), (367.0, 3.2))


def step_margin_db(passes: float) -> float:
    """The lead a shorter clip's starting point needs under a step budget, when the longer clip's fit
    makes ``passes`` passes over each frame (steps x clips per step / the longer layout's items)."""
    (p0, m0), (p1, m1) = STEP_MARGIN_POINTS
    slope = (m1 - m0) / math.log(p1 / p0)
    return max(m0, m0 + slope * math.log(max(passes, 1e-9) / p0))


@dataclass(frozen=True)
class ClipLenChoice:
    clip_len: int
    layout: Layout
    keyframes: KeyframePlan
    scores: Tuple[Tuple[int, float], ...]   # (candidate, mean per-frame PSNR-RGB of its starting point in dB)


def _psnr_rgb(src: Frames, out: Frames) -> np.ndarray:
    """Per-frame PSNR-RGB (BT.601, as the keyframe coders' RGB, in [0, 1]; 120 dB for equal frames)."""
    return 10 * np.log10(1.0 / np.maximum(frame_mse(yuv_to_rgb(src), yuv_to_rgb(out)), 1e-12))


def starting_psnr(infos: Sequence[VideoInfo], frames: Sequence[Frames], layout: Layout,
                  native: Dict[Tuple[int, int], List[np.ndarray]]) -> float:
    """Mean per-frame PSNR-RGB of what a keyframe-conditioned model starts from under ``layout``: the
    decoded keyframe at each keyframe (``native[(video, frame)]``: its planes), elsewhere the
    cross-fade ``k0 + (j / D) (k1 - k0)`` of its clip's keyframes at position j, rounded to samples."""
    d = layout.clip_len
    scores = []
    for it in layout.items(infos):
        if it.patch:   # the clips, once each (patches share their clip's frames)
            continue
        fmt = infos[it.video].pix_fmt
        start, end = it.frames[0], it.frames[0] + sum(it.valid)
        tau = (np.arange(end - start, dtype=np.float64) / d)[:, None, None]
        planes = []
        for k, (a, b) in enumerate(zip(native[(it.video, it.keyframes[0])], native[(it.video, it.keyframes[1])])):
            a, b = a.astype(np.float64), b.astype(np.float64)
            p = np.clip(np.rint(a[None] + tau * (b - a)[None]), 0, fmt.max_value).astype(fmt.dtype)
            for j, f in enumerate(range(start, end)):
                if (it.video, f) in native:
                    p[j] = native[(it.video, f)][k]
            planes.append(p)
        scores.append(_psnr_rgb(frames[it.video][start:end], Frames(tuple(planes), fmt)))
    return float(np.concatenate(scores).mean())


def margin_db(layout: Layout, infos: Sequence[VideoInfo], steps: Optional[int], batch: int) -> float:
    """The lead a shorter clip needs over ``layout``: :data:`SHORTER_CLIP_MARGIN_DB` for a fit counted
    in epochs (``steps`` None), else :func:`step_margin_db` of the passes ``steps`` steps of ``batch``
    items make over each of ``layout``'s items."""
    if steps is None:
        return SHORTER_CLIP_MARGIN_DB
    return step_margin_db(steps * batch / len(layout.items(infos)))


def choose_clip_len(candidates: Sequence[int], make_layout: Callable[[int], Layout],
                    code: Callable[[Layout], KeyframePlan], infos: Sequence[VideoInfo],
                    frames: Sequence[Frames], steps: Optional[int] = None,
                    batch: Callable[[int], int] = lambda d: 1) -> ClipLenChoice:
    """Code the keyframes for each candidate (longest first) and keep the one whose starting point
    scores best (:func:`starting_psnr`), a shorter one only when it wins by more than
    :func:`margin_db` of the best so far.  ``code`` codes a layout's keyframes at their budget;
    ``steps`` is the fit's step budget (None: counted in epochs), ``batch`` its items per step at a clip
    length."""
    best = None
    scores = []
    for d in sorted(candidates, reverse=True):
        layout = make_layout(d)
        kf = code(layout)
        score = starting_psnr(infos, frames, layout, kf.native)
        scores.append((d, round(score, 4)))
        if best is None or score > best[0] + margin_db(best[2], infos, steps, batch(best[1])):
            best = (score, d, layout, kf)
    assert best is not None
    return ClipLenChoice(best[1], best[2], best[3], tuple(scores))
