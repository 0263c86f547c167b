"""Writing files so that a failure never leaves a partial one: the one place that does it.

Every output nervcodec writes (the .nerv file, decoded videos, checkpoints,
downloaded keyframe-codec weights) goes to a temporary file *beside* its target
and is moved onto it with :func:`os.replace` only when complete and flushed to
disk.  A crash, Ctrl-C or a full disk therefore leaves the old file (if any)
untouched and no half-written one.  Temporary files are created with mode
``0666 & ~umask``, like any other new file, so the published file has the
permissions the user expects (``tempfile.mkstemp`` would make it 0600).

:func:`check_writable` really creates and removes a file in the folder, so an
unwritable output is found before minutes of fitting, not after; ``os.access``
answers yes to root even where the filesystem refuses.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from .errors import OutputError

__all__ = ["temp_beside", "publish", "discard", "atomic_file", "atomic_write_bytes", "check_writable"]


def _folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def temp_beside(target: "str | os.PathLike[str]", suffix: str = ".tmp", what: str = "") -> str:
    """Create an empty, uniquely named hidden file beside ``target``; return its path.

    ``what`` names the target in errors (``"the checkpoint"`` -> "cannot write the checkpoint X: ...")."""
    p = Path(target)
    name = f"{what} {p}" if what else str(p)
    folder = _folder_of(p)
    if not folder.is_dir():
        raise OutputError(f"cannot write {name}: folder {folder} does not exist")
    if p.is_dir():
        raise OutputError(f"cannot write {name}: it is a folder")
    for _ in range(100):
        tmp = folder / f".{p.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write {name}: folder {folder} is not writable ({exc.strerror or exc})") \
                from None
        os.close(fd)
        return str(tmp)
    raise OutputError(f"cannot find a free temporary name beside {p}")  # pragma: no cover


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync; the rename still helps
        pass
    finally:
        os.close(fd)


def publish(tmp: str, target: "str | os.PathLike[str]") -> None:
    """Flush a finished temporary file (or folder) to disk and move it onto ``target``; on any
    failure (Ctrl-C included) the temporary is removed and ``target`` is left as it was."""
    try:
        if os.path.isfile(tmp):
            _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise


def discard(tmp: Optional[str]) -> None:
    """Remove a temporary file or folder, quietly (used while cleaning up after a failure)."""
    if tmp is None:
        return
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)
    except OSError:  # pragma: no cover - nothing better to do while cleaning up
        pass


@contextlib.contextmanager
def atomic_file(target: "str | os.PathLike[str]") -> Iterator[BinaryIO]:
    """``with atomic_file(path) as f: f.write(...)``: ``path`` appears complete, or not at all."""
    tmp = temp_beside(target)
    try:
        with open(tmp, "wb") as f:
            yield f
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    publish(tmp, target)


def atomic_write_bytes(path: "str | os.PathLike[str]", data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module's docstring)."""
    with atomic_file(path) as f:
        f.write(data)


def check_writable(target: "str | os.PathLike[str]", what: str = "") -> None:
    """Raise :class:`OutputError` now if ``target`` could not be written later."""
    discard(temp_beside(target, what=what))
