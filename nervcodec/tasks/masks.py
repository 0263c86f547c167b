"""The holes of an inpainting experiment (``--mask``): where the fit may not look.

* ``disperse[:S]``: HNeRV's mask, five S x S squares centred at (h/2, w/2), (h/4, w/4),
  (h/4, 3w/4), (3h/4, w/4) and (3h/4, 3w/4).  S defaults to the reference's 50 pixels on
  its 640-pixel-high crops, scaled to the frame (S = min(h, w) * 50 / 640, at least 2).
  Squares that would overlap or leave the frame are refused, so the mask has exactly 5 S^2
  hole pixels;
* ``central``: Boosting-NeRV's centre box, (2 (h//8)) x (2 (w//8)) pixels around the centre
  (about h/4 x w/4);
* ``PATH.png``: one mask for every frame; a folder (or a printf pattern) of PNGs: one
  mask per frame, in natural order.  White (>= half the maximum, any channel averaged)
  marks a hole, as in the usual inpainting datasets; the PNG must have the frame's size.

The same mask holds for every plane: a chroma sample is a hole when any luma pixel it
covers is one (see :func:`chroma_holes`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["MaskSpec", "parse_mask", "disperse_boxes", "chroma_holes"]


@dataclass(frozen=True)
class MaskSpec:
    kind: str                    # disperse | central | file | files
    size: int = 0                # disperse square side (0 = scaled to the frame)
    paths: Tuple[str, ...] = ()  # file: one PNG; files: one per frame

    @property
    def spec(self) -> str:
        if self.kind == "disperse":
            return f"disperse:{self.size}" if self.size else "disperse"
        if self.kind == "central":
            return "central"
        return self.paths[0] if self.kind == "file" else os.path.dirname(self.paths[0]) or "."

    def check(self, width: int, height: int, frames: int) -> None:
        """Refuse, before any work, a mask that does not fit the video."""
        if self.kind == "files" and len(self.paths) != frames:
            raise ConfigError(f"--mask {self.spec} has {len(self.paths)} PNG files for {frames} frames")
        if self.kind == "disperse":
            disperse_boxes(height, width, self.size)
        if self.kind in ("file", "files"):
            self.holes(0, height, width)

    def holes(self, frame: int, height: int, width: int) -> np.ndarray:
        """(height, width) bool: True where frame ``frame`` has a hole."""
        out = np.zeros((height, width), bool)
        if self.kind == "disperse":
            for y0, x0, s in disperse_boxes(height, width, self.size):
                out[y0:y0 + s, x0:x0 + s] = True
        elif self.kind == "central":
            hy, hx = max(height // 8, 1), max(width // 8, 1)
            out[height // 2 - hy:height // 2 + hy, width // 2 - hx:width // 2 + hx] = True
        else:
            out = _read_png_mask(self.paths[frame if self.kind == "files" else 0], height, width)
        return out


def _boxes(height: int, width: int, s: int) -> List[Tuple[int, int, int]]:
    centres = [(height // 2, width // 2), (height // 4, width // 4), (height // 4, 3 * width // 4),
               (3 * height // 4, width // 4), (3 * height // 4, 3 * width // 4)]
    return [(cy - s // 2, cx - s // 2, s) for cy, cx in centres]


def _apart(height: int, width: int, s: int) -> bool:
    """The five squares of side ``s`` lie inside the frame and do not overlap."""
    boxes = _boxes(height, width, s)
    inside = all(y >= 0 and x >= 0 and y + s <= height and x + s <= width for y, x, _ in boxes)
    return inside and all(not (abs(a[0] - b[0]) < s and abs(a[1] - b[1]) < s)
                          for i, a in enumerate(boxes) for b in boxes[i + 1:])


def disperse_boxes(height: int, width: int, size: int = 0) -> List[Tuple[int, int, int]]:
    """(y0, x0, side) of the five disperse squares; refuses squares that overlap or leave the frame."""
    s = size or max(2, round(min(height, width) * 50 / 640))
    if not _apart(height, width, s):
        fit = [k for k in range(2, min(height, width) + 1) if _apart(height, width, k)]
        raise ConfigError(f"the disperse mask's squares of side {s} do not fit apart in a {width}x{height} frame"
                          + (f" (at most disperse:{max(fit)})" if fit else ""))
    return _boxes(height, width, s)


def chroma_holes(holes: np.ndarray, shift: Tuple[int, int]) -> np.ndarray:
    """Holes of a (…, H, W) luma mask at chroma resolution (>> shift): a chroma sample is a hole
    when any luma pixel it covers is one."""
    sy, sx = shift
    if not (sy or sx):
        return holes
    h, w = holes.shape[-2:]
    ph, pw = -(-h >> sy) << sy, -(-w >> sx) << sx
    pad = np.zeros(holes.shape[:-2] + (ph, pw), bool)
    pad[..., :h, :w] = holes
    r = pad.reshape(holes.shape[:-2] + (ph >> sy, 1 << sy, pw >> sx, 1 << sx))
    return r.any(axis=(-3, -1))


def _read_png_mask(path: str, height: int, width: int) -> np.ndarray:
    import imageio.v3 as iio
    try:
        img = np.asarray(iio.imread(path))
    except Exception as exc:
        raise InputError(f"cannot read the mask {path}: {exc}") from None
    if img.dtype == bool:          # 1-bit PNGs come back as booleans: True (white) = hole
        img = img.astype(np.uint8) * 255
    if img.ndim == 3:
        img = img[..., :3].mean(axis=-1) if img.shape[-1] >= 3 else img[..., 0]
    if img.shape != (height, width):
        raise InputError(f"the mask {path} is {img.shape[1]}x{img.shape[0]}, the video {width}x{height}")
    top = 65535 if img.dtype == np.uint16 else 255
    return img >= top / 2


def _natural(name: str) -> Tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def parse_mask(text: str) -> MaskSpec:
    """``disperse``, ``disperse:S``, ``central``, a PNG file or a folder of PNG files."""
    s = text.strip()
    low = s.lower()
    m = re.fullmatch(r"disperse(?::(\d+))?", low)
    if m:
        size = int(m.group(1)) if m.group(1) else 0
        if m.group(1) and size < 1:
            raise ConfigError("--mask disperse:S needs S >= 1")
        return MaskSpec("disperse", size)
    if low in ("central", "center", "centre"):
        return MaskSpec("central")
    if os.path.isdir(s):
        files = sorted((f for f in os.listdir(s) if f.lower().endswith(".png") and not f.startswith(".")),
                       key=_natural)
        if not files:
            raise InputError(f"the mask folder {s} holds no PNG files")
        return MaskSpec("files", paths=tuple(os.path.join(s, f) for f in files))
    if os.path.isfile(s):
        return MaskSpec("file", paths=(s,))
    raise ConfigError(f"--mask must be disperse[:S], central, a PNG file or a folder of PNGs; {text!r} is none "
                      f"of these")


