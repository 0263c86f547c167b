"""Running a model over items in batches and stitching its output into whole frames.

Used by the decoder and by the encoder (to report the PSNR of exactly what the
decoder will produce).

Synthesis runs with TF32 off: cuDNN allows TF32 for float32 convolutions by
default, which rounds their inputs to 10 mantissa bits, so a GPU decode would
differ from a CPU decode by more than float rounding (about 0.5% of 8-bit samples
one code value off, in an emulation).  With TF32 off the devices differ only by
the order of float32 additions (docs/reliability.md states the guarantee).
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..io.video import VideoInfo
from ..model.base import VideoModel
from ..model.planes import split_planes
from .layout import Item, Layout
from .tiles import keyframe_tiles, place_tile

__all__ = ["synthesize", "full_precision"]

KeyframeSource = Callable[[Sequence[Item]], Dict[Tuple[int, int], np.ndarray]]
KeyframePlanes = Callable[[int, int], List[np.ndarray]]


def _to_int(x: torch.Tensor, max_value: int, dtype: np.dtype) -> np.ndarray:
    return torch.round(x.float().clamp(0, 1) * max_value).to(torch.int32).cpu().numpy().astype(dtype)


def _slots(a: np.ndarray, shown: Sequence[int], clip_len: int) -> np.ndarray:
    """(B, len(shown), ...) -> (B, clip_len, ...): each slot in its place, the others zero."""
    whole = np.zeros((a.shape[0], clip_len) + a.shape[2:], a.dtype)
    whole[:, list(shown)] = a
    return whole


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """float32 convolutions and matrix products without TF32 (restored afterwards)."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _holdout_slots(layout: Layout, infos: Sequence[VideoInfo], chunk: Sequence[Item]) -> Dict[Tuple[int, int], Tuple[int, int]]:
    """(item, slot) of each frame a holdout kept out of the fit -> (distance d from the last fitted
    frame before it in the clip, that frame's slot): the frame is rendered as that slot d frames later."""
    split = layout.split
    out: Dict[Tuple[int, int], Tuple[int, int]] = {}
    if split is None:
        return out
    for i, it in enumerate(chunk):
        last = 0  # the clip's first frame is a keyframe, so fitted
        for j, f in enumerate(it.frames):
            if not it.valid[j]:
                continue
            if split.seen(f):
                last = j
            else:
                out[(i, j)] = (j - last, last)
    return out


@torch.no_grad()
def synthesize(model: VideoModel, layout: Layout, infos: Sequence[VideoInfo], items: Sequence[Item],
               device: torch.device, batch: int = 8, keyframes: Optional[KeyframeSource] = None,
               frame_range: Optional[Tuple[int, int]] = None, half: bool = False,
               keyframe_planes: Optional[KeyframePlanes] = None,
               phase: float = 0.0) -> Iterator[Tuple[int, int, List[np.ndarray]]]:
    """Yield ``(video, frame, planes)`` in order for every valid frame covered by ``items``.

    ``keyframes(items)`` returns the decoded full-resolution keyframes (C, H, W) those
    items need, keyed by (video, frame); it is called per batch so that a decoder only
    decodes the keyframes of the clips it synthesises.  When the layout says so,
    ``keyframe_planes(video, frame)`` (the decoded keyframe in its native planes)
    replaces the network's output at keyframe positions.

    With ``phase`` (0 < phase < 1) every frame is rendered ``phase`` of a frame interval
    later (frame-rate up-conversion): ``frame`` is then the frame before the rendered time,
    and no keyframe is substituted.

    Under a holdout, a keyframe-conditioned model renders each frame the fit did not see
    from the clip slot of the last fitted frame before it, moved forward by their distance
    (:func:`_holdout_slots`): the loss never reached the held-out slots, so their
    slot-specific weights (D-NeRV's temporal mixers) are untrained, while a fitted slot
    moved in time is an interpolation of what was fitted.
    """
    model.eval().to(device)
    fmt = infos[0].pix_fmt
    shift = (fmt.log2_chroma_h, fmt.log2_chroma_w) if fmt.has_chroma else (0, 0)
    cfg = model.config
    work_h, work_w = int(cfg.height), int(cfg.width)
    t_all = torch.from_numpy(layout.times(infos, items, phase))
    pending: "OrderedDict[Tuple[int, int], Dict]" = OrderedDict()
    rows_cols = {vi: layout.patch_grid(v) for vi, v in enumerate(infos)}
    substituting = layout.substitute and keyframe_planes is not None and not phase

    def wanted(f: int) -> bool:
        return frame_range is None or frame_range[0] <= f < frame_range[1]

    def replaced(vi: int, f: int) -> bool:
        """Frame ``f`` of video ``vi`` is shown as its decoded keyframe, not as the model's output."""
        return substituting and layout.is_keyframe(infos[vi], vi, f)

    with model.decoding():     # the parameters stay as they are until the last frame is yielded
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            t = t_all[start:start + len(chunk)].to(device)
            kf = None
            if model.needs_keyframes:
                assert keyframes is not None
                tiles = keyframe_tiles(keyframes(chunk), layout, infos, chunk, work_h, work_w)
                kf = torch.from_numpy(tiles.astype(np.float32)).to(device) / fmt.max_value
            slots = _holdout_slots(layout, infos, chunk) if model.needs_keyframes and not phase else {}
            # a model that makes each frame on its own is asked only for the clip positions yielded from it
            shown = (sorted({j for it in chunk for j, f in enumerate(it.frames)
                             if it.valid[j] and wanted(f) and not replaced(it.video, f)})
                     if model.frames_apart and substituting and not slots else None)
            rendered: Dict[float, Tuple[np.ndarray, Optional[np.ndarray]]] = {}
            for p in sorted({phase} | {d for d, _ in slots.values()}):
                tp = t if p == phase else torch.from_numpy(layout.times(infos, chunk, p)).to(device)
                with full_precision(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                      enabled=half and device.type == "cuda"):
                    if shown is None:
                        out = model(tp, kf, p) if p else model(tp, kf)
                    else:           # only the positions shown (none: an empty output)
                        out = model(tp, kf, slots=shown)
                py, pc = split_planes(out.float(), shift)
                ys = _to_int(py, fmt.max_value, fmt.dtype)
                cs = _to_int(pc, fmt.max_value, fmt.dtype) if pc is not None else None
                if shown is not None:   # into whole clips: the positions not shown (keyframes, outside the range) zero
                    ys, cs = (_slots(a, shown, layout.clip_len) if a is not None else None for a in (ys, cs))
                rendered[p] = (ys, cs)
            ys, cs = rendered[phase]
            for i, it in enumerate(chunk):
                key = (it.video, it.clip)
                if key not in pending:
                    v = infos[it.video]
                    shapes = fmt.plane_shapes(v.width, v.height)
                    pending[key] = {"frames": [[np.empty(s, fmt.dtype) for s in shapes] for _ in range(layout.clip_len)],
                                    "left": rows_cols[it.video][0] * rows_cols[it.video][1], "item": it}
                entry = pending[key]
                y0, x0 = layout.patch_origin(infos[it.video], it.patch)
                for j in range(layout.clip_len):
                    if not it.valid[j]:
                        continue
                    d, src = slots.get((i, j), (phase, j))
                    py_, pc_ = rendered[d]
                    tile = [py_[i, src]] + ([pc_[i, src, 0], pc_[i, src, 1]] if pc_ is not None else [])
                    place_tile(entry["frames"][j], tile, y0, x0, fmt)
                entry["left"] -= 1
            while pending and next(iter(pending.values()))["left"] == 0:
                (vi, _), entry = pending.popitem(last=False)
                it = entry["item"]
                for j, f in enumerate(it.frames):
                    if it.valid[j] and wanted(f):
                        if replaced(vi, f):
                            yield vi, f, keyframe_planes(vi, f)
                        else:
                            yield vi, f, entry["frames"][j]
