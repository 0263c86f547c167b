"""Fitting a video model to its frames: float weights in, float weights out.  No file I/O."""
from .data import FitData, PLANE_WEIGHTS, split_planes
from .fit import FitConfig, FitResult, fit, resolve_device

__all__ = ["FitData", "PLANE_WEIGHTS", "split_planes", "FitConfig", "FitResult", "fit", "resolve_device"]
