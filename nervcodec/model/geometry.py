"""Planning the upsampling stages from the frame size.

NeRV-family decoders start from a small grid and upsample it by a chain of
integer factors (PixelShuffle).  The output is ``grid * prod(factors)``, so to
work at any resolution we pick factors whose product makes the padded size
close to the frame size, then crop on output.  Examples of the result:
1920x1080 -> grid 16x9 with (5, 3, 2, 2, 2); 320x256 -> 5x4 with (4, 2, 2, 2, 2);
176x144 -> 11x9 with (4, 2, 2).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Tuple

from ..errors import ConfigError

__all__ = ["StagePlan", "plan_stages"]


@dataclass(frozen=True)
class StagePlan:
    grid_h: int
    grid_w: int
    factors: Tuple[int, ...]

    @property
    def scale(self) -> int:
        return math.prod(self.factors)

    @property
    def out_h(self) -> int:
        return self.grid_h * self.scale

    @property
    def out_w(self) -> int:
        return self.grid_w * self.scale


def _candidates(max_stages: int):
    for k in range(1, max_stages + 1):
        for combo in itertools.combinations_with_replacement((5, 4, 3, 2), k):
            yield tuple(sorted(combo, reverse=True))


def plan_stages(height: int, width: int, *, max_grid: int = 16, max_stages: int = 6,
                min_stages: int = 2) -> StagePlan:
    """Choose grid size and upscale factors for an output of at least height x width.

    Cost: padding waste first (each wasted pixel is compute and rate for nothing),
    then a preference for a smaller starting grid, then for about five stages (the
    reference designs' depth), then for 2x stages (high-resolution layers stay cheap).
    """
    if height < 1 or width < 1:
        raise ConfigError(f"frame size {width}x{height} is not valid")
    best = None
    for factors in set(_candidates(max_stages)):
        if len(factors) < min_stages and math.prod(factors) < max(height, width):
            continue
        s = math.prod(factors)
        gh, gw = -(-height // s), -(-width // s)
        if max(gh, gw) > max_grid:
            continue
        waste = (gh * s * gw * s) / (height * width) - 1.0
        key = (round(waste, 2), gh * gw, abs(len(factors) - 5), -factors.count(2), factors)
        if best is None or key < best[0]:
            best = (key, StagePlan(gh, gw, factors))
    if best is None:
        raise ConfigError(f"cannot plan upsampling stages for {width}x{height}")
    return best[1]
