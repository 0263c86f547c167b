"""Fitting a video model to its frames: float weights in, float weights out.  No file I/O."""
from .data import FitData, PLANE_WEIGHTS
from .fit import FitConfig, FitResult, StopFlag, evaluate_psnr, fit

__all__ = ["FitData", "PLANE_WEIGHTS", "FitConfig", "FitResult", "StopFlag", "evaluate_psnr", "fit"]
