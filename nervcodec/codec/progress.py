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


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressBar:
    """The bar starts at the first update; the expected fitting time is said once, at the second, from
    the steps between the two: the time before the first update (building the data, the starting model's
    evaluation, the first steps' warm-up) would inflate it, by hours on a large clip."""

    def __init__(self, enabled: bool, desc: str, unit: str = "step"):
        self._bar = None
        self._enabled = enabled
        self._desc, self._unit = desc, unit
        self._first = None      # (step, time) of the first update, until the estimate is said

    def __call__(self, step: int, total: int, psnr: float) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=step, desc=self._desc, unit=self._unit, file=sys.stderr,
                             dynamic_ncols=True, leave=False)
            self._first = (step, now) if step < total else None
        elif self._first is not None and step > self._first[0] and now > self._first[1]:
            rate = (step - self._first[0]) / (now - self._first[1])
            self._first = None
            if step < total:
                pace = f"{rate:.1f} steps/s" if rate >= 1 else f"{1 / rate:.1f} s/step"
                self._bar.write(f"expected fitting time: about {_duration(total / rate)} "
                                f"({total} steps at {pace} so far)", file=sys.stderr)
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix_str(f"training PSNR {psnr:.2f} dB", refresh=False)
        self._bar.refresh()

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
