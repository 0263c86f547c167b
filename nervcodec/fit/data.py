"""Training items held on the device.

The model predicts every plane at full resolution; :func:`nervcodec.model.planes.split_planes`
maps its output to the source's native planes, so the loss is computed against the
source's own planes with no colour conversion.

The loss weights the planes by how much each contributes to the RGB error of
the decoded video under BT.601 (sum of squared coefficients of Y, U and V in
the YUV->RGB matrix: 4.06, 4.22 and 3.21): minimising it approximately
minimises RGB MSE, which is how NeRV-family codecs are compared.

With holes (inpainting), each plane's squared error is multiplied by its visibility
(a chroma sample counts as hidden when any luma pixel it covers is), so the loss
gradient is exactly zero inside the holes, and divided by the visible fraction of the
frame, so a frame's error is the mean over its visible samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

__all__ = ["FitData", "DiskFitData", "PLANE_WEIGHTS", "sample_tensor"]

PLANE_WEIGHTS = (4.06, 4.22, 3.21)


@dataclass
class FitData:
    """All training items of a video (collection), resident on one device.

    An item is a clip of ``D`` frames of one patch of one video (D = 1 and one
    patch for NeRV).  Samples stay in their integer type (uint8, or int16 for
    deeper formats) and are converted to float one batch at a time.
    """

    t: torch.Tensor                      # (M, D) float32 frame times
    y: torch.Tensor                      # (M, D, h, w) integer luma (or gray)
    c: Optional[torch.Tensor]            # (M, D, 2, hc, wc) integer chroma, or None for gray
    mask: torch.Tensor                   # (M, D) float32: 1 for real frames, 0 for padding past the end
    keyframes: Optional[torch.Tensor]    # (M, 2, C, h, w) integer decoded keyframes at full res, or None
    max_value: int
    chroma_shift: Tuple[int, int]        # (log2 vertical, log2 horizontal) subsampling
    pixels: Optional[torch.Tensor] = None  # (M, D, h, w) uint8: 1 where the loss may look, 0 in holes (--mask)

    @property
    def num_items(self) -> int:
        return int(self.t.shape[0])

    @property
    def clip_len(self) -> int:
        return int(self.t.shape[1])

    @property
    def num_frames(self) -> float:
        return float(self.mask.sum())

    def _map(self, f: Callable[[torch.Tensor], torch.Tensor], keyframes: bool = True) -> "FitData":
        """The same data with ``f`` applied to every tensor it has (to the keyframes too unless ``keyframes``
        is False)."""
        g = lambda x: None if x is None else f(x)  # noqa: E731
        kf = g(self.keyframes) if keyframes else self.keyframes
        return FitData(g(self.t), g(self.y), g(self.c), g(self.mask), kf, self.max_value, self.chroma_shift,
                       g(self.pixels))

    def to(self, device: torch.device) -> "FitData":
        return self._map(lambda x: x.to(device))

    def keyframes_float(self, idx) -> Optional[torch.Tensor]:
        if self.keyframes is None:
            return None
        return self.keyframes[idx].float() / self.max_value

    def at_slots(self, slots: torch.Tensor) -> "FitData":
        """The same items, only the clip positions ``slots`` (an index tensor on the data's device; their
        keyframes whole)."""
        return self._map(lambda x: x.index_select(1, slots), keyframes=False)

    def live_slots(self) -> List[int]:
        """The clip positions that some item has in the loss (at D = 2 with keyframe-conditioned models, every
        clip's first frame is a keyframe the decoder substitutes: never in the loss)."""
        return torch.nonzero(self.mask.sum(dim=0) > 0).flatten().tolist()

    def batch(self, idx: torch.Tensor) -> "FitData":
        """The items ``idx`` (gathered on the data's device)."""
        return self._map(lambda x: x[idx])


def sample_tensor(a: np.ndarray) -> torch.Tensor:
    """Integer samples as a tensor in their own type; torch has no uint16, so deeper samples (at most
    16 bits, in practice 10-12) become int16."""
    return torch.from_numpy(a.astype(np.int16) if a.dtype == np.uint16 else a)


class DiskFitData:
    """The items of a collection kept in a cache file (``--cache-dir``), read a batch at a time.

    Offers what the fitting loop uses of :class:`FitData`: the item count, the (small)
    times and loss mask in memory, and :meth:`batch`, which reads the items' targets,
    keyframe tiles and visibility from the file and moves them to the device.  The
    ``digest`` of every record written stands for the data in checkpoint fingerprints.
    """

    def __init__(self, records, t: torch.Tensor, mask: torch.Tensor, max_value: int,
                 chroma_shift: Tuple[int, int], digest: str):
        self.records, self.t, self.mask = records, t, mask
        self.max_value, self.chroma_shift, self.digest = max_value, chroma_shift, digest
        self.device = torch.device("cpu")

    num_items = FitData.num_items
    clip_len = FitData.clip_len
    num_frames = FitData.num_frames
    live_slots = FitData.live_slots

    def to(self, device: torch.device) -> "DiskFitData":
        self.device = torch.device(device)
        self.t, self.mask = self.t.to(device), self.mask.to(device)
        return self

    def batch(self, idx: torch.Tensor) -> FitData:
        rows = self.records.read(idx.tolist())
        dev = self.device

        def tensor(name: str) -> Optional[torch.Tensor]:
            return sample_tensor(rows[name]).to(dev) if name in rows else None

        return FitData(self.t[idx], tensor("y"), tensor("c"), self.mask[idx], tensor("keyframes"), self.max_value,
                       self.chroma_shift, tensor("pixels"))
