"""Choosing the torch device from a user's ``--device`` string; shared by fitting and decoding."""
from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> a usable device.

    Every refusal is a :class:`ConfigError` raised here, before any work starts: an
    unknown name, CUDA on a host without it, or a GPU index the host does not have
    (torch would accept ``cuda:7`` on a one-GPU host and fail later, mid-fit).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ConfigError(f"unsupported device {name!r} (auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for, but no CUDA device is available")
    count = torch.cuda.device_count()
    if dev.index is not None and not 0 <= dev.index < count:
        raise ConfigError(f"--device {name}: this host has {count} CUDA device{'s' if count != 1 else ''} "
                          f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    return dev
