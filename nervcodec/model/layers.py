"""Building blocks shared by the NeRV-family models."""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["positional_encoding", "PositionalEncoding", "activation", "squash"]


def positional_encoding(t: torch.Tensor, base: float, levels: int) -> torch.Tensor:
    """NeRV's encoding of time: [sin(b^0 pi t), cos(b^0 pi t), ..., sin(b^(L-1) pi t), cos(...)].

    ``t`` has any shape; the result adds a trailing dimension of size 2L with sin
    and cos interleaved as in the seed paper.  Frequencies are computed in float64
    and the phases reduced modulo 2 pi before the float32 cast: the top
    frequencies (1.25^39 pi ~ 6000 pi) would otherwise lose most of their bits,
    and encoder and decoder must agree on every input bit.
    """
    freqs = (base ** torch.arange(levels, dtype=torch.float64, device=t.device)) * math.pi
    phase = torch.remainder(t.to(torch.float64)[..., None] * freqs, 2 * math.pi)
    enc = torch.stack([torch.sin(phase), torch.cos(phase)], dim=-1)
    return enc.flatten(-2).to(torch.float32)


class PositionalEncoding(nn.Module):
    def __init__(self, base: float, levels: int):
        super().__init__()
        self.base, self.levels = float(base), int(levels)

    @property
    def dim(self) -> int:
        return 2 * self.levels

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return positional_encoding(t, self.base, self.levels)


def activation(name: str) -> nn.Module:
    table = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}
    return table[name]()


def squash(x: torch.Tensor) -> torch.Tensor:
    """Map the head's output to [0, 1] smoothly, as NeRV does: (tanh(x) + 1) / 2."""
    return torch.tanh(x) * 0.5 + 0.5
