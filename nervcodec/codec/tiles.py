"""Cutting frames into the model's padded working tiles, and stitching outputs back exactly."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..io.video import Frames, PixelFormat, VideoInfo
from .layout import Item, Layout

__all__ = ["cut_plane", "cut_items", "cut_luma", "keyframe_tiles", "upsample_chroma", "place_tile"]


def cut_plane(plane: np.ndarray, y0: int, x0: int, h: int, w: int, out_h: int, out_w: int) -> np.ndarray:
    """plane[..., y0:y0+h, x0:x0+w], edge-padded to (out_h, out_w)."""
    tile = plane[..., y0:y0 + h, x0:x0 + w]
    ph, pw = out_h - tile.shape[-2], out_w - tile.shape[-1]
    if ph or pw:
        pad = [(0, 0)] * (tile.ndim - 2) + [(0, ph), (0, pw)]
        tile = np.pad(tile, pad, mode="edge")
    return tile


def _shift(fmt: PixelFormat) -> Tuple[int, int]:
    return (fmt.log2_chroma_h, fmt.log2_chroma_w) if fmt.has_chroma else (0, 0)


def cut_items(videos: Sequence[Frames], layout: Layout, infos: Sequence[VideoInfo], items: Sequence[Item],
              work_h: int, work_w: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Targets of each item: luma (M, D, h, w) and chroma (M, D, 2, h >> sy, w >> sx) or None."""
    fmt = infos[0].pix_fmt
    sy, sx = _shift(fmt)
    m, d = len(items), layout.clip_len
    y = cut_luma([fr.planes[0] for fr in videos], layout, infos, items, work_h, work_w)
    c = np.empty((m, d, 2, work_h >> sy, work_w >> sx), fmt.dtype) if fmt.has_chroma else None
    for i, it in enumerate(items):
        fr = videos[it.video]
        y0, x0 = layout.patch_origin(infos[it.video], it.patch)
        idx = list(it.frames)
        if c is not None:
            for k in (1, 2):
                c[i, :, k - 1] = cut_plane(fr.planes[k][idx], y0 >> sy, x0 >> sx, layout.patch_h >> sy,
                                           layout.patch_w >> sx, work_h >> sy, work_w >> sx)
    return y, c


def cut_luma(planes: Sequence[np.ndarray], layout: Layout, infos: Sequence[VideoInfo], items: Sequence[Item],
             work_h: int, work_w: int) -> np.ndarray:
    """(M, D, h, w) tiles of luma-sized planes ``planes[video]`` (N, H, W) for each item (videos no item
    uses may be None)."""
    dtype = next(p for p in planes if p is not None).dtype
    out = np.empty((len(items), layout.clip_len, work_h, work_w), dtype)
    for i, it in enumerate(items):
        y0, x0 = layout.patch_origin(infos[it.video], it.patch)
        out[i] = cut_plane(planes[it.video][list(it.frames)], y0, x0, layout.patch_h, layout.patch_w, work_h, work_w)
    return out


def upsample_chroma(frames: Frames) -> np.ndarray:
    """(N, C, H, W) full-resolution planes (chroma repeated to luma size)."""
    fmt = frames.pix_fmt
    y = frames.planes[0]
    if not fmt.has_chroma:
        return y[:, None]
    sy, sx = _shift(fmt)
    h, w = y.shape[-2:]
    chroma = [np.repeat(np.repeat(p, 1 << sy, axis=-2), 1 << sx, axis=-1)[:, :h, :w] for p in frames.planes[1:]]
    return np.stack([y] + chroma, axis=1)


def keyframe_tiles(decoded: Dict[Tuple[int, int], np.ndarray], layout: Layout, infos: Sequence[VideoInfo],
                   items: Sequence[Item], work_h: int, work_w: int) -> np.ndarray:
    """(M, 2, C, h, w) keyframe tiles of each item from full-resolution decoded keyframes
    ``decoded[(video, frame)] -> (C, H, W)``."""
    first = next(iter(decoded.values()))
    out = np.empty((len(items), 2, first.shape[0], work_h, work_w), first.dtype)
    for i, it in enumerate(items):
        y0, x0 = layout.patch_origin(infos[it.video], it.patch)
        for j, f in enumerate(it.keyframes):
            out[i, j] = cut_plane(decoded[(it.video, f)], y0, x0, layout.patch_h, layout.patch_w, work_h, work_w)
    return out


def place_tile(dest: List[np.ndarray], tile: List[np.ndarray], y0: int, x0: int, fmt: PixelFormat) -> None:
    """Write the valid part of one tile's planes into full frame planes (one frame)."""
    sy, sx = _shift(fmt)
    for k, (dp, tp) in enumerate(zip(dest, tile)):
        oy, ox = (y0, x0) if k == 0 else (y0 >> sy, x0 >> sx)
        h = min(tp.shape[-2], dp.shape[-2] - oy)
        w = min(tp.shape[-1], dp.shape[-1] - ox)
        dp[oy:oy + h, ox:ox + w] = tp[:h, :w]
