"""Quality and rate metrics, computed the same way for every codec.

Pure functions on frames and files, shared by ``nervcodec bench`` and the
encoder's ``--verify``:

* :mod:`.psnr` -- PSNR-RGB (NeRV convention), PSNR-Y/U/V and PSNR-YUV (6:1:1)
* :mod:`.msssim` -- MS-SSIM via pytorch_msssim with a window that fits small frames
* :mod:`.rgb` -- conversion to rgb24 by ffmpeg's default conversion
* :mod:`.vmaf` -- VMAF via the bundled ffmpeg's libvmaf
* :mod:`.rate` -- bits per pixel from file sizes
* :mod:`.bd` -- BD-rate / BD-PSNR via the ``bjontegaard`` package, with overlap
* :mod:`.quality` -- everything above over whole videos
* :mod:`.tasks` -- interpolation, inpainting and denoising scores (seen/unseen, holes, reference)
"""
from .bd import BDResult, bd_delta, curve_overlap, ms_ssim_to_db
from .msssim import MsSsimMethod, frame_ms_ssim, ms_ssim_method
from .psnr import PSNR_CAP_DB, PlanePSNR, frame_mse, frame_psnr, mse_to_psnr, plane_frame_psnr, rgb_frame_psnr
from .quality import QualityMeter, QualityReport, compare_videos, measure_frames, measure_pair
from .rate import bits_per_pixel, file_bpp
from .rgb import frames_to_rgb24, rgb24_args
from .vmaf import VmafResult, vmaf_args, vmaf_score

__all__ = [
    "BDResult", "bd_delta", "curve_overlap", "ms_ssim_to_db",
    "MsSsimMethod", "frame_ms_ssim", "ms_ssim_method",
    "PSNR_CAP_DB", "PlanePSNR", "frame_mse", "frame_psnr", "mse_to_psnr", "plane_frame_psnr", "rgb_frame_psnr",
    "QualityMeter", "QualityReport", "compare_videos", "measure_frames", "measure_pair",
    "bits_per_pixel", "file_bpp",
    "frames_to_rgb24", "rgb24_args",
    "VmafResult", "vmaf_args", "vmaf_score",
]
