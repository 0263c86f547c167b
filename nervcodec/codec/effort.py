"""Encoder effort presets: how much fitting an encode buys, named as in x264/x265.

An effort preset is a budget of optimizer steps, not of epochs.  A step costs what its
batch costs (the frame size and the network), whatever the clip's length, so a preset
takes about the same time on a 48-frame clip and on a 250-frame one, and the time it
takes can be said before the fit starts.  The rate is set separately (``--bpp``,
``--params`` or ``--rate-preset``), as with ``-crf`` next to ``-preset`` in x264.

The step counts grow by about 1.5x per preset; ``medium`` (the default) was chosen by
measurement on the dev clips (docs/benchmarks.md, "Effort presets"): it was sized to fit
people_qcif_48f at 0.5 bpp on this project's 2-core CPU in no more time than the 300 epochs of
the previous default as timed then; re-timed on an idle machine those take 191 s, medium 282 s
(+0.86 dB PSNR-RGB), ``fast`` 197 s (+0.49 dB).  ``--epochs`` and ``--steps`` override a
preset's budget for research.

``--rate-term sampled`` (experimental, every preset keeps ``whole``) estimates the rate of the
tensors that follow the video's length (the latent grids' per-frame maps) from the frames each step
draws.  Measured (docs/benchmarks.md, "The sampled rate term, measured in the faster presets"): at
``fast`` the grids' encodes take 1.4-1.7x less time on carphone and 1.2-1.3x on people for +1.5 %
and -0.4 % BD-rate, and at about the same time it beats dropping steps.  Its fit collapsed on bikes
until the latents' starting steps were fixed (docs/benchmarks.md, "Why the grids' fits collapsed on
bikes"); the presets were not measured again with it on every dev clip, so none uses it yet.
"""
from __future__ import annotations

from typing import Dict

from ..errors import ConfigError

__all__ = ["EFFORT_PRESETS", "DEFAULT_EFFORT", "RATE_PRESETS", "RATE_TERMS", "effort_steps", "rate_preset_bpp",
           "check_effort", "check_rate_term"]

# name -> optimizer steps
EFFORT_PRESETS: Dict[str, int] = {
    "ultrafast": 300, "superfast": 450, "veryfast": 700, "faster": 1000, "fast": 1500,
    "medium": 2200, "slow": 3300, "slower": 5000, "veryslow": 7500,
}
DEFAULT_EFFORT = "medium"

# How a step estimates the rate of per-frame tensors (FitConfig.sample_rate): from every frame (every
# preset), or from the frames the step draws (--rate-term sampled, experimental).
RATE_TERMS = ("whole", "sampled")

# Named rates (bits per pixel of the whole file), the same trade-off at any resolution.
# Before the effort presets these were the values of encode's --preset.
RATE_PRESETS: Dict[str, float] = {"tiny": 0.05, "small": 0.1, "medium": 0.25, "large": 0.5, "xlarge": 1.0}


def check_effort(name: str) -> str:
    """``name`` when it is an effort preset; the old rate spellings get a message that says where they went."""
    if name in EFFORT_PRESETS:
        return name
    if name in RATE_PRESETS:
        raise ConfigError(f"--preset now sets the encoder's effort ({', '.join(EFFORT_PRESETS)}), as in x264; "
                          f"the rate named {name!r} ({RATE_PRESETS[name]:g} bpp) moved to --rate-preset {name}")
    raise ConfigError(f"unknown preset {name!r} (known: {', '.join(EFFORT_PRESETS)})")


def effort_steps(name: str) -> int:
    return EFFORT_PRESETS[check_effort(name)]


def rate_preset_bpp(name: str) -> float:
    try:
        return RATE_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown rate preset {name!r} (known: {', '.join(RATE_PRESETS)})") from None


def check_rate_term(name: str) -> str:
    if name not in RATE_TERMS:
        raise ConfigError(f"unknown rate term {name!r} (known: {', '.join(RATE_TERMS)})")
    return name
