"""Checkpoints of a fit in progress: saved now and then and on Ctrl-C, resumed with ``--resume``.

A checkpoint holds everything the fitting loop's future depends on: the model's
and the optimizer's tensors, the learning-rate schedule's position, the state of
the generator that draws each epoch's item order (as it was *before* the current
epoch's permutation, plus the position inside that epoch), torch's global RNG
state, and the step.  On the CPU a resumed fit therefore takes exactly the steps
the uninterrupted one would have taken, and the encoder writes the same file byte
for byte (tests/test_checkpoint.py).

The file is written with :func:`torch.save` from tensors and plain values only and
read back with ``torch.load(weights_only=True)``, so loading one can never run code
even if the file is not what it claims.  It is written atomically (temporary file,
fsync, rename), so an interruption during the save leaves the previous checkpoint.
A fingerprint of the fitting problem (model configuration, fitting settings and
the training data itself) is stored with it: resuming with another input or other
settings is refused instead of silently mixing two fits.

Ctrl-C does not stop a fit mid-step (see :class:`nervcodec.fit.fit.StopFlag`): the
current step finishes, the fitting loop asks the checkpointer to save, and then the
fit stops with :class:`KeyboardInterrupt`.  A second Ctrl-C stops at once (keeping
the last saved checkpoint).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from ..errors import ConfigError, FormatError, OutputError
from ..fsutil import atomic_write_bytes, check_writable

__all__ = ["Checkpointer", "fit_fingerprint", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1
_KIND = "nervcodec-fit-checkpoint"


def _hash_tensor(h: "hashlib._Hash", t: Optional[torch.Tensor]) -> None:
    if t is None:
        h.update(b"none")
        return
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy() if t.numel() else b"")


def fit_fingerprint(model_config: Dict[str, Any], data: Any, fit_cfg: Any) -> str:
    """SHA-256 of what decides a fit: the model's configuration, the fitting settings and the data."""
    h = hashlib.sha256()
    cfg = {k: getattr(fit_cfg, k) for k in sorted(vars(fit_cfg))}
    h.update(json.dumps({"model": model_config, "fit": cfg}, sort_keys=True, default=str).encode())
    if getattr(data, "digest", None) is not None:   # data kept on disk: the digest of its records
        h.update(data.digest.encode())
        for name in ("t", "mask"):
            _hash_tensor(h, data.t if name == "t" else data.mask)
    else:
        for name in ("t", "y", "c", "mask", "keyframes"):
            _hash_tensor(h, getattr(data, name, None))
    h.update(f"{data.max_value}{tuple(data.chroma_shift)}".encode())
    return h.hexdigest()


class Checkpointer:
    """Saves the fit's state every ``every_seconds`` and when Ctrl-C is pressed; loads it for ``--resume``.

    Pass it to :func:`~nervcodec.fit.fit` as ``checkpoint=``.  Called after each step
    with a function that builds the state and whether the fit is about to stop; it
    saves when one is due or when the fit stops.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str, every_seconds: float = 60.0):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every = float(every_seconds)
        self.saved_step: Optional[int] = None
        self._last = time.monotonic()
        if self.path.is_dir():
            raise OutputError(f"the checkpoint {self.path} is a directory")
        check_writable(self.path, "the checkpoint")  # now, not at the first save after minutes of fitting

    # -- loading
    def load(self) -> Optional[Dict[str, Any]]:
        """The saved fit state, or None when there is no checkpoint file yet (a fresh start)."""
        if not self.path.exists():
            return None
        try:
            obj = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, not a torch file, or holding objects weights_only refuses
            raise FormatError(f"checkpoint {self.path} is damaged or not a nervcodec checkpoint "
                              f"({type(exc).__name__})") from None
        if not (isinstance(obj, dict) and obj.get("kind") == _KIND and isinstance(obj.get("state"), dict)):
            raise FormatError(f"{self.path} is not a nervcodec checkpoint")
        if obj.get("version") != CHECKPOINT_VERSION:
            raise FormatError(f"checkpoint {self.path} has version {obj.get('version')}, "
                              f"this nervcodec reads {CHECKPOINT_VERSION}")
        if obj.get("fingerprint") != self.fingerprint:
            raise ConfigError(f"checkpoint {self.path} was made for another input or other settings; "
                              f"remove it, or run without --resume to start over")
        return obj["state"]

    # -- saving
    def save(self, state: Dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save({"kind": _KIND, "version": CHECKPOINT_VERSION, "fingerprint": self.fingerprint,
                    "state": state}, buf)
        atomic_write_bytes(self.path, buf.getvalue())
        self.saved_step = int(state.get("step", 0))
        self._last = time.monotonic()

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # the encode itself succeeded; a stale checkpoint is only clutter
            import warnings
            warnings.warn(f"could not remove the checkpoint {self.path}: {exc.strerror or exc}", stacklevel=2)

    def __call__(self, snapshot: Callable[[], Dict[str, Any]], stopping: bool = False) -> None:
        """After each step: save when one is due, or when the fit is about to stop."""
        if stopping or time.monotonic() - self._last >= self.every:
            self.save(snapshot())
