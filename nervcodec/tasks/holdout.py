"""Which frames a fit sees: the held-out frames of a temporal-interpolation experiment.

Two spellings, after the reference code (see docs/tasks.md):

* ``every:N`` keeps frames 0, N, 2N, ... (NeRV's ``--frame_gap N``) and holds out the rest;
* ``A_B_C`` (HNeRV's ``--data_split``): in each block of C frames, positions below A are fitted
  and positions from B on are held out and scored as unseen; positions in [A, B) are neither.
  ``1_1_2`` is every other frame, the interpolation protocol of HNeRV and Boosting-NeRV.

Frame times stay normalised over *all* frames, so a held-out frame sits between fitted ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List

from ..errors import ConfigError

__all__ = ["Holdout", "parse_holdout"]


@dataclass(frozen=True)
class Holdout:
    """In every block of ``block`` frames, positions < ``fit_below`` are fitted and positions
    >= ``unseen_from`` are held out and scored as unseen."""

    fit_below: int
    unseen_from: int
    block: int

    def __post_init__(self) -> None:
        if not 1 <= self.fit_below <= self.unseen_from <= self.block:
            raise ConfigError(f"a holdout split A_B_C needs 1 <= A <= B <= C, got "
                              f"{self.fit_below}_{self.unseen_from}_{self.block}")
        if self.block > 1024:
            raise ConfigError(f"the holdout block of {self.block} frames is too long (at most 1024)")

    @property
    def spec(self) -> str:
        """The canonical spelling (``every:N`` where it is one, else ``A_B_C``)."""
        if self.fit_below == 1 and self.unseen_from == 1:
            return f"every:{self.block}"
        return f"{self.fit_below}_{self.unseen_from}_{self.block}"

    @property
    def trivial(self) -> bool:
        """Every frame is fitted (``every:1`` or ``1_1_1``)."""
        return self.fit_below == self.block

    def seen(self, frame: int) -> bool:
        return frame % self.block < self.fit_below

    def unseen(self, frame: int) -> bool:
        return frame % self.block >= self.unseen_from

    def seen_frames(self, num_frames: int) -> List[int]:
        return [f for f in range(num_frames) if self.seen(f)]

    def unseen_frames(self, num_frames: int) -> List[int]:
        return [f for f in range(num_frames) if self.unseen(f)]

    def last_seen(self, num_frames: int) -> int:
        """The last fitted frame of a video of ``num_frames`` frames (frame 0 always is one)."""
        f = num_frames - 1
        while not self.seen(f):
            f -= 1
        return f


def parse_holdout(text: str) -> Holdout:
    """``every:N`` or ``A_B_C`` -> :class:`Holdout`."""
    s = text.strip().lower()
    m = re.fullmatch(r"every:(\d+)", s)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ConfigError(f"--holdout every:N needs N >= 1, got {text!r}")
        return Holdout(1, 1, n)
    m = re.fullmatch(r"(?:split:)?(\d+)_(\d+)_(\d+)", s)
    if m:
        return Holdout(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    raise ConfigError(f"--holdout must look like every:N or A_B_C (e.g. every:2 or 1_1_2), got {text!r}")
