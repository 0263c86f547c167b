"""The papers' visual comparisons as PNG files: panels side by side, a zoomed crop, an error map.

One column per panel (the source or reference first, then each codec or task output),
three rows:

1. the whole frame, enlarged by a whole factor so that small clips stay visible;
2. a crop around the place where the last panel differs most from the first (a quarter
   of the frame's side), enlarged to the same width;
3. the absolute error against the first panel (mean over R, G, B, times ``ERROR_GAIN``,
   white = large), as in the NeRV supplement's comparison figures; the first column
   shows a black map.

Every panel is placed at a fixed position (:func:`panel_box`) and copied pixel for pixel
(nearest-neighbour enlargement), so a test can check each one; each has a one-line label
above it.
"""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np

from ..fsutil import atomic_write_bytes

__all__ = ["compose_figure", "write_figure", "panel_box", "middle_frame", "LABEL_H", "GAP", "ERROR_GAIN"]

LABEL_H = 16      # pixels of the label strip above each panel
GAP = 4           # pixels between panels
ERROR_GAIN = 4
MIN_WIDTH = 256   # panels are enlarged to at least this width


def middle_frame(num_frames: int) -> int:
    """The frame a figure shows: the middle one, off D-NeRV's keyframe grid for even lengths."""
    return max(num_frames // 2 - 1, 0)


def _scale(w: int) -> int:
    return max(1, -(-MIN_WIDTH // w))


def _crop_box(a: np.ndarray, b: np.ndarray) -> Tuple[int, int, int, int]:
    """(y0, x0, h, w): a quarter-side crop centred where |a - b| summed over the crop is largest."""
    h, w = a.shape[:2]
    ch, cw = max(h // 4, 1), max(w // 4, 1)
    err = np.abs(a.astype(np.int32) - b.astype(np.int32)).sum(axis=-1).astype(np.float64)
    integral = np.pad(err, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = integral[ch:, cw:] - integral[:-ch, cw:] - integral[ch:, :-cw] + integral[:-ch, :-cw]
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y0), int(x0), ch, cw


def panel_box(row: int, col: int, h: int, w: int) -> Tuple[int, int, int, int]:
    """(top, left, height, width) of the image of panel (row, col) in a figure of h x w frames."""
    s = _scale(w)
    ph, pw = h * s, w * s
    zh = max(h // 4, 1) * (pw // max(w // 4, 1))
    heights = [ph, zh, ph]
    top = sum(LABEL_H + GAP + hh for hh in heights[:row]) + LABEL_H
    left = col * (pw + GAP)
    return top, left, heights[row], pw


def compose_figure(frames: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """(H, W, 3) uint8 figure of ``frames`` ((h, w, 3) uint8 RGB, the first one the reference)."""
    from PIL import Image, ImageDraw
    h, w = frames[0].shape[:2]
    s = _scale(w)
    y0, x0, ch, cw = _crop_box(frames[0], frames[-1])
    zoom = (w * s) // cw
    rows: List[List[np.ndarray]] = [[], [], []]
    for f in frames:
        rows[0].append(np.repeat(np.repeat(f, s, 0), s, 1))
        crop = f[y0:y0 + ch, x0:x0 + cw]
        rows[1].append(np.repeat(np.repeat(crop, zoom, 0), zoom, 1))
        err = np.abs(f.astype(np.int32) - frames[0].astype(np.int32)).mean(axis=-1) * ERROR_GAIN
        e = np.clip(err, 0, 255).astype(np.uint8)
        rows[2].append(np.repeat(np.repeat(np.stack([e] * 3, -1), s, 0), s, 1))
    bottom = panel_box(2, 0, h, w)
    total_h = bottom[0] + bottom[2]
    total_w = len(frames) * (w * s + GAP) - GAP
    canvas = Image.new("RGB", (total_w, total_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    names = ("", "zoom", "|error| x%d" % ERROR_GAIN)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            top, left, _, _ = panel_box(r, c, h, w)
            canvas.paste(Image.fromarray(img), (left, top))
            text = labels[c] if r == 0 else f"{labels[c].split(',')[0]} {names[r]}"
            draw.text((left + 2, top - LABEL_H + 2), text[: max(8, (w * s) // 6)], fill=(0, 0, 0))
    return np.asarray(canvas)


def write_figure(path: str | os.PathLike, frames: Sequence[np.ndarray], labels: Sequence[str]) -> Tuple[int, int]:
    """Compose and write the figure as a PNG (atomically); every panel after the first gets its
    PSNR-RGB against the first in its label.  Returns the PNG's (height, width)."""
    import io

    from PIL import Image

    from ..metrics.psnr import rgb_frame_psnr
    labels = [labels[0]] + [f"{label}, {float(rgb_frame_psnr(frames[0][None], f[None])[0]):.2f} dB"
                            for f, label in zip(frames[1:], labels[1:])]
    img = compose_figure(frames, labels)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return img.shape[0], img.shape[1]
