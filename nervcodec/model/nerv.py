"""NeRV (Chen et al., NeurIPS 2021): a video as a function from frame time to frame.

Layout, for a working size of grid * prod(factors):

    t -> positional encoding (2L) -> Linear -> GELU -> Linear -> GELU -> (C0, grid_h, grid_w)
      -> [conv3x3 (Cin -> Cout * s^2) -> PixelShuffle(s) -> GELU] for each factor s
      -> conv1x1 head (-> channels) -> (tanh + 1) / 2

Generalised to any resolution: :func:`~nervcodec.model.geometry.plan_stages`
chooses the grid and factors from the frame size, and :func:`plan_nerv` chooses
the widths from a parameter budget.  A clip here is one frame (D = 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from ..errors import ConfigError
from .base import ModelSpec, VideoModel, register_model
from .geometry import plan_stages
from .layers import PositionalEncoding, activation, squash

__all__ = ["NeRVConfig", "NeRV", "plan_nerv", "nerv_param_count"]


@dataclass(frozen=True)
class NeRVConfig:
    height: int                 # working size (a multiple of prod(factors))
    width: int
    channels: int               # 3 (Y, U, V at full resolution) or 1 (gray)
    grid_h: int
    grid_w: int
    factors: Tuple[int, ...]
    widths: Tuple[int, ...]     # output channels of each upsampling stage
    grid_channels: int          # C0: channels of the stem's output grid
    stem_dim: int
    embed_base: float = 1.25
    embed_levels: int = 40
    act: str = "gelu"

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.factors):
            raise ValueError("one width per upsampling stage")
        if self.grid_h * _prod(self.factors) != self.height or self.grid_w * _prod(self.factors) != self.width:
            raise ValueError("height/width must equal grid * prod(factors)")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if min(self.widths + (self.grid_channels, self.stem_dim, self.embed_levels)) < 1:
            raise ValueError("widths must be positive")
        if self.act not in ("gelu", "silu", "relu"):
            raise ValueError(f"unknown activation {self.act!r}")


def _prod(xs) -> int:
    p = 1
    for x in xs:
        p *= x
    return p


class NeRVBlock(nn.Module):
    def __init__(self, cin: int, cout: int, factor: int, act: str):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * factor * factor, 3, padding=1)
        self.shuffle = nn.PixelShuffle(factor)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class NeRV(VideoModel):
    arch = "nerv"
    needs_keyframes = False
    clip_len = 1

    def __init__(self, config: NeRVConfig):
        super().__init__(config)
        c = config
        self.pe = PositionalEncoding(c.embed_base, c.embed_levels)
        self.stem = nn.Sequential(
            nn.Linear(self.pe.dim, c.stem_dim), activation(c.act),
            nn.Linear(c.stem_dim, c.grid_channels * c.grid_h * c.grid_w), activation(c.act),
        )
        blocks, cin = [], c.grid_channels
        for f, w in zip(c.factors, c.widths):
            blocks.append(NeRVBlock(cin, w, f, c.act))
            cin = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, c.channels, 1)

    def forward(self, t: torch.Tensor, keyframes: Optional[torch.Tensor] = None, phase: float = 0.0) -> torch.Tensor:
        b, d = t.shape  # a frame between two others is just another t: phase is already in it
        c = self.config
        x = self.stem(self.pe(t.reshape(b * d)))
        x = x.view(b * d, c.grid_channels, c.grid_h, c.grid_w)
        for blk in self.blocks:
            x = blk(x)
        x = squash(self.head(x))
        return x.view(b, d, c.channels, c.height, c.width)


def nerv_param_count(c: NeRVConfig) -> int:
    pe = 2 * c.embed_levels
    n = pe * c.stem_dim + c.stem_dim
    n += c.stem_dim * c.grid_channels * c.grid_h * c.grid_w + c.grid_channels * c.grid_h * c.grid_w
    cin = c.grid_channels
    for f, w in zip(c.factors, c.widths):
        n += 9 * cin * w * f * f + w * f * f
        cin = w
    n += cin * c.channels + c.channels
    return n


# Width rules (one scale s sets every width; chosen so that small budgets still
# give every stage a usable width):
#   grid channels C0 = s, stem width = max(s, 16), stage widths s * 0.85^i with
#   a floor of 12 (the last, highest-resolution stages stay affordable).
_DECAY = 0.85
_FLOOR = 12


def _config_for(scale: float, height: int, width: int, channels: int, embed_levels: int) -> NeRVConfig:
    plan = plan_stages(height, width)
    s = max(scale, 1.0)
    widths = tuple(max(int(round(s * _DECAY ** i)), min(_FLOOR, int(round(s)) or 1)) for i in range(len(plan.factors)))
    return NeRVConfig(height=plan.out_h, width=plan.out_w, channels=channels, grid_h=plan.grid_h,
                      grid_w=plan.grid_w, factors=plan.factors, widths=widths,
                      grid_channels=max(int(round(s)), 1), stem_dim=max(int(round(s)), 16),
                      embed_levels=embed_levels)


def plan_nerv(height: int, width: int, channels: int, params: int, *, embed_levels: int = 40,
              **_: object) -> NeRVConfig:
    """The NeRV config of about ``params`` parameters for frames of ``height x width``."""
    if params < 1000:
        raise ConfigError(f"a NeRV model needs at least ~1000 parameters, asked for {params}")
    lo, hi = 1.0, 4096.0
    if nerv_param_count(_config_for(lo, height, width, channels, embed_levels)) > params:
        raise ConfigError(f"{params} parameters are too few for a NeRV model of {width}x{height}")
    for _ in range(60):
        mid = (lo + hi) / 2
        if nerv_param_count(_config_for(mid, height, width, channels, embed_levels)) <= params:
            lo = mid
        else:
            hi = mid
    return _config_for(lo, height, width, channels, embed_levels)


# Fitting defaults: 4 frames per step at a peak learning rate of 5e-3.  Coded size of one
# weight (scales included), measured on people_qcif_48f at 150 epochs: 6.6 bits at 8-bit
# quantization, 5.7 at 7 and 4.8 at 6.
NERV = register_model(ModelSpec(name="nerv", arch_id=1, cls=NeRV, config_cls=NeRVConfig, plan=plan_nerv,
                                batch=4, lr=5e-3, bits_per_param={8: 6.6, 7: 5.7, 6: 4.8},
                                description="NeRV: frame time -> MLP -> upsampling conv blocks"))
