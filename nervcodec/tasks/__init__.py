"""The seed papers' other tasks, as plain array functions the codec and the bench build on.

* :mod:`.holdout`: which frames a fit sees (temporal interpolation: NeRV's frame gap,
  HNeRV's ``a_b_c`` split);
* :mod:`.noise`: seeded, reported corruption of a clean clip (denoising);
* :mod:`.masks`: the holes of an inpainting experiment (disperse, central, PNG files);
* :mod:`.fill`: filling holes from their surroundings only (what D-NeRV's keyframes show there);
* :mod:`.filters`: the classic per-frame baselines (3x3 median, Gaussian).

Nothing here knows about models or files; only numpy.
"""
from .fill import fill_holes
from .filters import FILTERS, apply_filter
from .holdout import Holdout, parse_holdout
from .masks import MaskSpec, parse_mask
from .noise import NOISE_TYPES, NoiseSpec, add_noise, parse_noise

__all__ = ["Holdout", "parse_holdout", "NoiseSpec", "NOISE_TYPES", "add_noise", "parse_noise", "MaskSpec",
           "parse_mask", "fill_holes", "FILTERS", "apply_filter"]
