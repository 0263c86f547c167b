"""How the C allocator treats the large arrays of a fit (glibc on Linux; elsewhere nothing changes).

A rate-aware step of the latent grids makes a few dozen temporary arrays of every latent (4.4M
floats, 17.6 MB, on carphone_pristine; 62M on bikes), and frees them at once.  glibc hands arrays
that large to the kernel as fresh mappings and unmaps them on free, so every step pays page faults
on every temporary: the Laplace bits' forward pass over 4.4M latents took 74-100 ms, 63 ms with the
memory kept (docs/benchmarks.md, "Keeping freed memory"); a 300-step grid fit 10.7 % less time on
average over five rounds.  :func:`keep_freed_memory` asks glibc to serve such arrays from its heap and
to keep what is freed for the next step, as the jemalloc or tcmalloc that PyTorch's CPU tuning
guides preload would.  The peak memory is the same (what was freed is reused); what changes is that
the process does not give it back to the system before it ends.  The CLI calls it; a program that
uses the library decides for its own process.
"""
from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_memory", "kept", "KEEP_BELOW"]

KEEP_BELOW = 1 << 30        # arrays under 1 GiB come from the heap (glibc's default: 128 KiB, growing to 32 MiB)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3    # mallopt's parameter numbers (malloc.h)
_applied = False


def keep_freed_memory() -> bool:
    """Make glibc keep large freed arrays for reuse; True when it took effect (now or before)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl, ...): its allocator stays as it is
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = mallopt(_M_MMAP_THRESHOLD, KEEP_BELOW) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1) == 1
    return _applied


def kept() -> bool:
    """Whether :func:`keep_freed_memory` has taken effect in this process (benchmarks record it)."""
    return _applied
