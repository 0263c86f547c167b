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
    def __init__(self, enabled: bool, desc: str, unit: str = "step"):
        self._bar = None
        self._enabled = enabled
        self._desc, self._unit = desc, unit
        self._t0 = time.monotonic()

    def __call__(self, step: int, total: int, psnr: float) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm import tqdm
            elapsed = time.monotonic() - self._t0
            if 0 < step < total and elapsed > 0:   # said once, up front, before the bar takes the line
                print(f"expected fitting time: about {_duration(elapsed * total / step)} "
                      f"({total} steps at {step / elapsed:.1f} steps/s so far)", file=sys.stderr)
            self._bar = tqdm(total=total, initial=step, desc=self._desc, unit=self._unit, file=sys.stderr,
                             dynamic_ncols=True, leave=False)
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
