"""Frozen configuration of an encode, built once by the CLI (or a script) and passed down."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from ..errors import ConfigError
from ..tasks.holdout import parse_holdout
from .effort import DEFAULT_EFFORT, check_effort, check_rate_term, rate_preset_bpp

__all__ = ["EncodeConfig"]


@dataclass(frozen=True)
class EncodeConfig:
    """Everything that decides what an encode produces.

    At most one of ``params`` (a parameter budget), ``bpp`` (a target rate, turned
    into a budget by the rate planner) or ``rate_preset`` (a named rate) sizes the
    model; with none, the rate preset ``"medium"`` (0.25 bpp) applies.  ``preset`` is
    the effort (a budget of optimizer steps, see :mod:`.effort`), which ``epochs`` or
    ``steps`` override.
    """

    model: str = "dnerv"
    params: Optional[int] = None
    bpp: Optional[float] = None
    rate_preset: Optional[str] = None
    preset: str = DEFAULT_EFFORT  # effort: ultrafast .. veryslow
    epochs: Optional[int] = None  # fit for this many epochs instead of the preset's steps
    steps: Optional[int] = None   # fit for this many optimizer steps instead of the preset's
    rate_term: str = "whole"      # whole | sampled (experimental): the per-frame tensors' rate per step
    batch: int = 0                # frames (NeRV) or clips (D-NeRV) per step; 0 = chosen from the model
    lr: float = 0.0               # 0 = the model's default
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    seed: int = 0
    loss: str = "l2"              # l2 | fusion (0.7 L1 + 0.3 (1 - SSIM))
    quant_bits: Optional[int] = None  # None = rate-aware fitting with learned steps; B = B-bit after fitting
    lam: Optional[float] = None       # fixed rate-distortion lambda (loss = MSE + lam * bpp); None = rate control
    clip_len: Optional[int] = None  # keyframe interval of D-NeRV and latent-grid-kf; None = chosen (codec/cliplen.py)
    scenecut: bool = True         # keyframe-conditioned models: restart the clips at scene cuts (codec/scenecut.py)
    gop: Optional[int] = None     # frames per group of the latent-grid model; None = the model's default
    keyframe_codec: Optional[str] = None   # None = the default codec
    keyframe_quality: Optional[int] = None  # None = chosen by the rate planner
    keyframe_share: Optional[float] = None  # share of a --bpp budget for keyframes; None = the model's default
    keyframe_weights: Optional[str] = None  # local weights file for learned keyframe codecs
    fps: Optional[str] = None               # frame rate of PNG-sequence and raw .yuv inputs (default 25)
    size: Optional[str] = None              # WxH of raw .yuv inputs
    pix_fmt: Optional[str] = None           # pixel format of raw .yuv inputs (yuv420p, yuv420p10le, ...)
    verify: bool = False
    force: bool = False
    checkpoint: Optional[str] = None        # save the fitting state here now and then and on Ctrl-C
    resume: bool = False                    # continue from ``checkpoint`` when it exists
    checkpoint_seconds: float = 60.0        # time between checkpoint saves
    holdout: Optional[str] = None           # frames kept out of the fit (every:N or A_B_C): interpolation
    mask: Optional[str] = None              # holes kept out of the fit (disperse[:S], central, PNG(s)): inpainting
    reference: Optional[str] = None         # --verify scores against this clean clip instead of the input
    figure: Optional[str] = None            # --verify writes the task's comparison PNG here
    cache_dir: Optional[str] = None         # keep frames and training items on disk here, not in memory

    def __post_init__(self) -> None:
        chosen = [n.replace("_", "-") for n in ("params", "bpp", "rate_preset") if getattr(self, n) is not None]
        if len(chosen) > 1:
            raise ConfigError(f"give only one of --params, --bpp, --rate-preset (got --{', --'.join(chosen)})")
        check_effort(self.preset)
        check_rate_term(self.rate_term)
        if self.rate_preset is not None:
            rate_preset_bpp(self.rate_preset)
        if self.params is not None and self.params < 1:
            raise ConfigError(f"--params must be positive, got {self.params}")
        if self.bpp is not None and not (0 < self.bpp < 64):
            raise ConfigError(f"--bpp must be in (0, 64), got {self.bpp}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps must be at least 1, got {self.steps}")
        if self.epochs is not None and self.steps is not None:
            raise ConfigError("give only one of --epochs and --steps (each sets the length of the fit)")
        if self.batch < 0:
            raise ConfigError(f"--batch must be positive, got {self.batch}")
        if self.lr < 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.quant_bits is not None and not 2 <= self.quant_bits <= 16:
            raise ConfigError(f"quantization bits must be in 2..16, got {self.quant_bits}")
        if self.lam is not None and not (0 <= self.lam < 1e6):
            raise ConfigError(f"--lambda must be in [0, 1e6), got {self.lam}")
        if self.lam is not None and self.quant_bits is not None:
            raise ConfigError("--lambda weighs the rate of the rate-aware fit; --quant-bits quantizes after a fit "
                              "without one: give only one of them")
        if self.clip_len is not None and not 2 <= self.clip_len <= 64:
            raise ConfigError(f"clip length must be in 2..64, got {self.clip_len}")
        if self.gop is not None and not 1 <= self.gop <= 4096:
            raise ConfigError(f"--gop must be in 1..4096, got {self.gop}")
        if self.keyframe_share is not None and not 0.0 < self.keyframe_share < 1.0:
            raise ConfigError(f"--keyframe-share must be between 0 and 1 (exclusive), got {self.keyframe_share}")
        if self.keyframe_share is not None and self.params is not None:
            raise ConfigError("--keyframe-share divides a rate budget: use it with --bpp or --rate-preset, not --params")
        if self.keyframe_share is not None and self.keyframe_quality is not None:
            raise ConfigError("give only one of --keyframe-share and --keyframe-quality")
        if self.resume and not self.checkpoint:
            raise ConfigError("--resume needs --checkpoint PATH (the checkpoint to continue from)")
        if not self.checkpoint_seconds >= 0:
            raise ConfigError(f"the checkpoint interval must be >= 0 seconds, got {self.checkpoint_seconds}")
        if self.holdout is not None:
            parse_holdout(self.holdout)
        if (self.size is None) != (self.pix_fmt is None):
            raise ConfigError("raw .yuv input needs both --size WxH and --pix-fmt")
        if self.reference is not None and not self.verify:
            raise ConfigError("--reference is the clip --verify scores against; give --verify too")
        if self.figure is not None and not self.verify:
            raise ConfigError("--figure shows what --verify decodes; give --verify too")

    @property
    def target_bpp(self) -> Optional[float]:
        """The rate asked for: --bpp, --rate-preset, or the default rate when no size is given."""
        if self.bpp is not None:
            return self.bpp
        if self.rate_preset is not None:
            return rate_preset_bpp(self.rate_preset)
        return None if self.params is not None else rate_preset_bpp("medium")

    @property
    def effort(self) -> str:
        """How the fit's length is set, in words: the preset and its steps, or --epochs / --steps."""
        if self.epochs is not None:
            return f"--epochs {self.epochs}"
        if self.steps is not None:
            return f"--steps {self.steps}"
        return f"preset {self.preset}"

    @property
    def sampled_rate(self) -> bool:
        """Whether the fit estimates the per-frame tensors' rate from the frames each step draws."""
        return self.rate_term == "sampled"

    @property
    def quant_code(self) -> int:
        """The header's quantization byte: 0 for learned steps, else the --quant-bits precision."""
        return self.quant_bits or 0

    def with_(self, **changes) -> "EncodeConfig":
        return replace(self, **changes)
