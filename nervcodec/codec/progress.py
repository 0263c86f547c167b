"""A progress bar on stderr (tqdm) showing the fitting PSNR and the ETA.

The bar starts at the step of its first update (the fit's first refresh, or a resumed
fit's step), so its rate and ETA count only the steps it has seen run.  The PSNR it
shows is the training loss's: the plane-weighted MSE of the last steps' batches, as
fitted (float weights, or the quantized ones in the rate-aware part), which is not the
PSNR-YUV of the decoded file that encode reports at the end.
"""
from __future__ import annotations

import sys
import time
from typing import Optional


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Rate-aware steps timed before the expected fitting time is said again: the pace of the part of a fit
# with the rate term (every CODED_CHECK_STEPS = 25 steps of which measures the coder's real size).
RESTATE_STEPS = 25


def _pace(rate: float) -> str:
    return f"{rate:.1f} steps/s" if rate >= 1 else f"{1 / rate:.1f} s/step"


class ProgressBar:
    """The bar starts at the first update; the expected fitting time is said once, at the second, from
    the steps between the two: the time before the first update (building the data, the starting model's
    evaluation, the first steps' warm-up) would inflate it, by hours on a large clip.

    ``rate_from``: the step at which the fit's rate-aware part begins.  Its steps also quantize every
    weight and estimate their rate, which can cost several times a plain step (latent grids on a large
    clip: 2-3 s against 0.7 s on this project's CPU), so an estimate taken from plain steps alone is said
    as such and said again once :data:`RESTATE_STEPS` rate-aware steps have run."""

    def __init__(self, enabled: bool, desc: str, unit: str = "step", rate_from: Optional[int] = None):
        self._bar = None
        self._enabled = enabled
        self._desc, self._unit = desc, unit
        self._rate_from = rate_from
        self._first = None      # (step, time) of the first update, until the estimate is said
        self._again = None      # (step, time) of the first rate-aware update, once an estimate needs redoing
        self._redo = False      # the estimate said was timed on plain steps and the rate-aware ones follow

    def __call__(self, step: int, total: int, psnr: float) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=step, desc=self._desc, unit=self._unit, file=sys.stderr,
                             dynamic_ncols=True, leave=False)
            self._first = (step, now) if step < total else None
        else:
            self._estimate(step, total, now)
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix_str(f"training PSNR {psnr:.2f} dB", refresh=False)
        self._bar.refresh()

    def _estimate(self, step: int, total: int, now: float) -> None:
        if self._first is not None and step > self._first[0] and now > self._first[1]:
            begun, since = self._first
            rate = (step - begun) / (now - since)
            self._first = None
            if step < total:
                self._redo = self._rate_from is not None and begun < self._rate_from < total
                later = (f"; the rate-aware steps from step {self._rate_from} on are timed when they run"
                         if self._redo else "")
                self._bar.write(f"expected fitting time: about {_duration(total / rate)} "
                                f"({total} steps at {_pace(rate)} so far{later})", file=sys.stderr)
        if not self._redo or step < self._rate_from:   # _redo: rate_from is set and not reached when timed
            return
        if self._again is None:
            self._again = (step, now)
        elif step - self._again[0] >= RESTATE_STEPS and now > self._again[1]:
            rate = (step - self._again[0]) / (now - self._again[1])
            self._redo = False
            if step < total:
                self._bar.write(f"expected fitting time: about {_duration((total - step) / rate)} more "
                                f"({total - step} rate-aware steps left at {_pace(rate)})", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def note(enabled: bool, message: str) -> None:
    """One line of status on stderr when progress output is on."""
    if enabled:
        print(message, file=sys.stderr)
