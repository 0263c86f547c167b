"""Lists of input videos for collections too long for a command line (``--inputs-from``)."""
from __future__ import annotations

import os
from typing import List

from ..errors import InputError

__all__ = ["read_input_list", "VIDEO_EXTENSIONS"]

VIDEO_EXTENSIONS = (".y4m", ".mp4", ".mkv", ".mov", ".avi", ".webm", ".yuv4mpeg")


def read_input_list(path: str | os.PathLike) -> List[str]:
    """The videos named by ``path``: a text file with one path per line (blank lines and ``#``
    comments skipped, relative paths taken relative to the file's folder), or a folder, whose
    video files are taken in name order."""
    p = os.fspath(path)
    if os.path.isdir(p):
        names = sorted(f for f in os.listdir(p) if f.lower().endswith(VIDEO_EXTENSIONS) and not f.startswith("."))
        if not names:
            raise InputError(f"the folder {p} holds no video files ({', '.join(VIDEO_EXTENSIONS)})")
        return [os.path.join(p, f) for f in names]
    try:
        with open(p, encoding="utf-8") as fp:
            lines = fp.read().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the input list {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"the input list {p} is not UTF-8 text (one path per line)") from None
    base = os.path.dirname(os.path.abspath(p))
    out = []
    for line in lines:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        out.append(item if os.path.isabs(item) else os.path.join(base, item))
    if not out:
        raise InputError(f"the input list {p} names no video")
    return out
