"""Bjøntegaard deltas (BD-rate, BD-PSNR) through the ``bjontegaard`` package.

The package integrates both curves over the interval where they overlap, but
it only *warns* when that interval is small and returns NaN (with a warning)
when it is empty.  A benchmark must not print a number that rests on no
common ground, so :func:`bd_delta` measures the overlap itself (the package's
definition: length of the common interval over the length of the union),
reports it next to the deltas, and gives no number where it is zero.

The package's interpolators also need the points sorted by the integration
variable with no repeats (Akima rejects unsorted input), so points are sorted
and de-duplicated here; the order callers pass them in does not matter.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["BD_METHODS", "LOW_OVERLAP", "BDResult", "bd_delta", "curve_overlap", "ms_ssim_to_db"]

BD_METHODS = ("akima", "pchip", "cubic")
#: Below this overlap the package warns; we keep the number but flag it as unreliable.
LOW_OVERLAP = 0.75


@dataclass(frozen=True)
class BDResult:
    """Deltas of a test curve against an anchor curve.

    ``bd_rate`` is in percent (negative: the test codec needs fewer bits for the
    same quality); ``bd_quality`` is in the quality metric's unit (dB for PSNR;
    positive: the test codec is better at the same rate).  Either is None when
    it cannot be computed, and ``notes`` says why.
    """

    bd_rate: Optional[float]
    bd_quality: Optional[float]
    overlap_quality: float  # fraction of the quality range both curves cover (BD-rate integrates there)
    overlap_rate: float     # fraction of the log-rate range both curves cover (BD-PSNR integrates there)
    method: str
    anchor_points: int
    test_points: int
    notes: Tuple[str, ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def ms_ssim_to_db(value: float) -> float:
    """MS-SSIM as -10·log10(1 - x), the usual scale for averaging and BD on MS-SSIM."""
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


def curve_overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Length of the common interval of two value sets over the length of their union (0 if disjoint)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0 or b.size == 0:
        return 0.0
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    if hi < lo:
        return 0.0
    if total <= 0:  # every point at one value on both curves
        return 1.0 if hi == lo else 0.0
    return float((hi - lo) / total)


def _clean(rates: Sequence[float], quality: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rates, np.float64)
    q = np.asarray(quality, np.float64)
    if r.shape != q.shape:
        raise ValueError("rates and qualities must have the same length")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    return r[keep], q[keep]


def _sorted_unique(x: np.ndarray, y: np.ndarray, prefer_low_y: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Sort by x and keep one point per x value (the better one), so interpolators get strictly increasing x."""
    order = np.lexsort((y if prefer_low_y else -y, x))
    x, y = x[order], y[order]
    first = np.concatenate([[True], np.diff(x) > 0])
    return x[first], y[first]


def _monotonic(rates: np.ndarray, quality: np.ndarray) -> bool:
    order = np.argsort(rates)
    return bool(np.all(np.diff(quality[order]) > 0))


def bd_delta(anchor_rates: Sequence[float], anchor_quality: Sequence[float],
             test_rates: Sequence[float], test_quality: Sequence[float],
             method: str = "akima", quality_name: str = "BD-PSNR") -> BDResult:
    """BD-rate and BD-quality of the test curve against the anchor, with the curves' overlap.

    Rates are any positive rate measure (bpp here: BD-rate is a ratio, so the
    unit cancels).  Each curve needs at least two distinct points.  ``quality_name``
    only names the quality delta in the notes (e.g. "BD-MS-SSIM").
    """
    import bjontegaard

    if method not in BD_METHODS:
        raise ValueError(f"unknown BD interpolation {method!r} (known: {', '.join(BD_METHODS)})")
    ar, aq = _clean(anchor_rates, anchor_quality)
    tr, tq = _clean(test_rates, test_quality)
    notes: List[str] = []
    ov_q = curve_overlap(aq, tq)
    ov_r = curve_overlap(np.log10(ar) if ar.size else ar, np.log10(tr) if tr.size else tr)

    def result(rate: Optional[float], quality: Optional[float]) -> BDResult:
        return BDResult(rate, quality, ov_q, ov_r, method, int(ar.size), int(tr.size), tuple(notes))

    if min(np.unique(ar).size, np.unique(tr).size) < 2:
        notes.append("each curve needs at least two points with distinct rates")
        return result(None, None)
    for name, r, q in (("anchor", ar, aq), ("test", tr, tq)):
        if not _monotonic(r, q):
            notes.append(f"{name} curve is not monotonic (quality does not always rise with rate)")

    bd_rate: Optional[float] = None
    bd_quality: Optional[float] = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is reported explicitly instead
        if ov_q > 0:
            aq_s, ar_s = _sorted_unique(aq, ar, prefer_low_y=True)
            tq_s, tr_s = _sorted_unique(tq, tr, prefer_low_y=True)
            if min(aq_s.size, tq_s.size) >= 2:
                v = float(bjontegaard.bd_rate(ar_s, aq_s, tr_s, tq_s, method=method,
                                              require_matching_points=False, min_overlap=0))
                bd_rate = v if math.isfinite(v) else None
        else:
            notes.append("the curves do not overlap in quality: no BD-rate")
        if ov_r > 0:
            ar_s, aq_s = _sorted_unique(ar, aq, prefer_low_y=False)
            tr_s, tq_s = _sorted_unique(tr, tq, prefer_low_y=False)
            v = float(bjontegaard.bd_psnr(ar_s, aq_s, tr_s, tq_s, method=method,
                                          require_matching_points=False, min_overlap=0))
            bd_quality = v if math.isfinite(v) else None
        else:
            notes.append(f"the curves do not overlap in rate: no {quality_name}")
    low = [name for name, ov in (("quality", ov_q), ("rate", ov_r)) if 0 < ov < LOW_OVERLAP]
    if low:
        notes.append(f"overlap below {LOW_OVERLAP:.0%} in {' and '.join(low)}: the delta covers only "
                     f"part of the curves; treat it as indicative")
    return result(bd_rate, bd_quality)
