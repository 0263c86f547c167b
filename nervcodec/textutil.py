"""Small helpers for the messages nervcodec prints."""
from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, noun: str) -> str:
    """``1 frame``, ``2 frames``, ``0 frames``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
