"""encode / decode / info: the codec's public functions.

The encoder's names are imported on first use (PEP 562), so that
``import nervcodec.codec.decode`` pulls in only what decoding needs: no fitting
code, no optimizer.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import EncodeConfig
from .effort import DEFAULT_EFFORT, EFFORT_PRESETS, RATE_PRESETS
from .decode import DecodeResult, decode
from .inspect import FileInfo, inspect

_LAZY = {"EncodeResult": ".encoder", "encode": ".encoder", "VerifyResult": ".verification", "verify": ".verification"}

__all__ = ["EncodeConfig", "EFFORT_PRESETS", "RATE_PRESETS", "DEFAULT_EFFORT", "EncodeResult", "encode",
           "DecodeResult", "decode", "FileInfo", "inspect", "VerifyResult", "verify"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))
