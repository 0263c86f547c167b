"""The contract every video model follows, and the registry of models by stable name and id.

A model maps the time of each frame in a clip (and, for keyframe-conditioned
models, the clip's two decoded keyframes) to the frames themselves::

    forward(t, keyframes, phase=0.0) -> frames
    t:         (B, D) float times in [0, 1]          (D = clip length, 1 for NeRV)
    keyframes: (B, 2, C, h, w) float in [0, 1] or None (start and end keyframe of each clip)
    frames:    (B, D, C, h, w) float in [0, 1]        (C = 3 for YUV, 1 for gray; full-resolution planes)
    phase:     fraction of a frame interval by which t is shifted past the clip's frames
               (frame-rate up-conversion); models whose output depends on t alone ignore it

``h, w`` is the model's working size (the frame, or a patch of it, padded so the
upsampling stages divide it).  Everything a decoder needs to rebuild the network
is in ``model.config``, a frozen dataclass of ints, floats and tuples that the
container stores as JSON.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterator, Mapping, Optional, Tuple, Type

import torch
from torch import nn

from ..errors import ConfigError, FormatError

__all__ = ["VideoModel", "ModelSpec", "register_model", "model_spec", "model_spec_by_id", "MODEL_SPECS",
           "build_model", "config_to_dict", "config_from_dict", "model_names"]


class VideoModel(nn.Module):
    """Base class: subclasses set ``arch`` and implement ``forward``."""

    arch: ClassVar[str] = ""
    clip_len: int = 1
    needs_keyframes: ClassVar[bool] = False
    # each frame of a clip is made on its own, so forward(t, keyframes, phase, slots=[j, ...]) makes only
    # those clip positions (equal to the whole clip's output there); the synthesis then skips the frames
    # that decoded keyframes replace
    frames_apart: ClassVar[bool] = False

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    def forward(self, t: torch.Tensor, keyframes: Optional[torch.Tensor] = None,
                phase: float = 0.0) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """A span of calls under which the parameters do not change (a decode): a model may keep what it
        computes from its parameters alone for the later calls, and drops it at the end."""
        yield

    def latent_names(self) -> Tuple[str, ...]:
        """Parameters that hold the content itself (latent maps) rather than a network's weights.

        The rate term starts them at the steps at which the whole estimate meets the budget, finer where
        the distortion's curvature is larger (:meth:`nervcodec.quant.RateTerm.begin`): latent maps can be
        far more numerous than the budget has bits, and a map the fit barely used must start at zero
        bits, not at the network's bits per value.  Empty: every tensor starts at the same bits per value."""
        return ()

    def rate_rows(self, t: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-frame tensors whose rows a batch at times ``t`` reads: name -> the rows (sorted, unique).

        The rate-aware fit estimates such a tensor's bits from those rows alone, scaled up to the whole
        tensor, instead of from every row at every step (:meth:`nervcodec.quant.RateTerm.swap_in`): a
        model whose parameters follow the video's length (latent grids: one map per frame) then pays
        per step for the frames it draws, not for the whole video.  Empty: every tensor whole."""
        return {}

    @property
    def out_size(self) -> Tuple[int, int]:
        """(h, w) the model produces."""
        return (int(self.config.height), int(self.config.width))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass(frozen=True)
class ModelSpec:
    """Everything nervcodec knows about one architecture, in one place.

    ``name`` is the stable name users type (``--model NAME``; the command line builds
    its choices from the registry) and ``arch_id`` the stable number written in files.
    ``batch`` and ``lr`` are the fitting defaults (items per step, peak learning
    rate), ``rate_start`` and ``noise_until`` when the rate term starts and when the
    quantization it simulates turns from additive noise to rounding, and ``bits_per_param`` the measured entropy-coded size of one weight at each
    quantization bit depth, which the rate planner divides a byte budget by.
    """

    name: str
    arch_id: int
    cls: Type[VideoModel]
    config_cls: type
    # plan(height, width, channels, params, **options) -> config of about `params` parameters
    plan: Callable[..., Any]
    batch: int
    lr: float
    bits_per_param: Mapping[int, float]
    description: str = ""
    # the rate-aware fit: fraction of the steps before the rate term starts, and before which
    # (from the start) the network sees noisy instead of rounded weights (None: rounded throughout)
    rate_start: float = 0.75
    noise_until: Optional[float] = None
    check_coded: bool = False   # the rate controller re-measures the coder's size (large, sparse tensors)
    grouped: bool = False   # the model cuts the video into groups of frames (--gop)
    # for a model that the parameter budget does not size (its tensors follow from the video, and the rate
    # term decides what they cost): config -> (weights its section holds at the least, tensors); None: sized
    floor_size: Optional[Callable[[Any], Tuple[int, int]]] = None
    # keyframe-conditioned models: the clip lengths the planner chooses among when --clip-len is not
    # given (nervcodec/codec/cliplen.py); empty: the default length
    clip_lens: Tuple[int, ...] = ()
    # keyframe-conditioned models: the share of a --bpp budget their keyframes get when --keyframe-share
    # is not given; None: the codec's KEYFRAME_SHARE (nervcodec/codec/keyframes.py)
    keyframe_share: Optional[float] = None
    # keyframe-conditioned models: the default batch is the fewest clips whose loss holds at least this many
    # frames (a clip of D frames has D - 1 between its keyframes); 0: ``batch`` clips at any length
    step_frames: int = 0

    def default_batch(self, clip_len: int) -> int:
        """Items per step when --batch is not given, for clips of ``clip_len`` frames."""
        if self.step_frames and clip_len > 1:
            return max(self.batch, -(-self.step_frames // (clip_len - 1)))
        return self.batch

    def bits_per_weight(self, bits: int) -> float:
        """Coded bits of one ``bits``-bit weight: measured where known, else a conservative guess."""
        return float(self.bits_per_param.get(bits, bits - 0.4))


MODEL_SPECS: Dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODEL_SPECS or any(s.arch_id == spec.arch_id for s in MODEL_SPECS.values()):
        raise RuntimeError(f"model {spec.name!r} / id {spec.arch_id} registered twice")
    MODEL_SPECS[spec.name] = spec
    return spec


def model_names() -> Tuple[str, ...]:
    """The registered models' names, in registration order (the command line's choices)."""
    return tuple(MODEL_SPECS)


def model_spec(name: str) -> ModelSpec:
    try:
        return MODEL_SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r} (known: {', '.join(sorted(MODEL_SPECS))})") from None


def model_spec_by_id(arch_id: int) -> ModelSpec:
    for s in MODEL_SPECS.values():
        if s.arch_id == arch_id:
            return s
    raise FormatError(f"the file uses model id {arch_id}, which this version of nervcodec does not know")


def config_to_dict(config: Any) -> Dict[str, Any]:
    out = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def config_from_dict(config_cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a frozen config from stored JSON, checking names and types (a file is untrusted input)."""
    if not isinstance(data, Mapping):
        raise FormatError("model configuration is not an object")
    kwargs = {}
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise FormatError(f"model configuration has unknown fields: {', '.join(sorted(unknown))}")
    for name, f in names.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise FormatError(f"model configuration lacks {name!r}")
            continue
        v = data[name]
        kwargs[name] = _check_typed(name, _check_value(name, v), f.type)
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"invalid model configuration: {exc}") from None


def _check_value(name: str, v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, (int, float, str)):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 1 << 31:
            raise FormatError(f"model configuration value {name}={v} is out of range")
        return v
    if isinstance(v, list) and len(v) <= 64 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                    for x in v):
        if any(isinstance(x, int) and abs(x) > 1 << 31 for x in v):
            raise FormatError(f"model configuration value {name} is out of range")
        return tuple(v)
    raise FormatError(f"model configuration value {name!r} has an unsupported type")


def _check_typed(name: str, v: Any, annotation: Any) -> Any:
    """Hold a stored value to its field's declared type (int, float, str, Tuple[int, ...], ...).

    JSON does not tell 16 from 16.0, and Python would accept either almost
    everywhere, only to fail deep inside a layer; a file's values must have the
    types the encoder wrote.  Floats must be finite.
    """
    t = (annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation)))
    t = t.replace(" ", "").replace("typing.", "")
    scalar = {"int": int, "float": float, "str": str, "bool": bool}

    def ok(x: Any, kind: str) -> bool:
        if kind == "int":
            return isinstance(x, int) and not isinstance(x, bool)
        if kind == "float":
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        if kind == "bool":
            return isinstance(x, bool)
        return isinstance(x, str)

    if t in scalar:
        if not ok(v, t):
            raise FormatError(f"model configuration value {name!r} is not a valid {t}")
        return float(v) if t == "float" else v
    for prefix in ("Tuple[", "tuple["):
        if t.startswith(prefix) and t.endswith(",...]") and t[len(prefix):-5] in scalar:
            kind = t[len(prefix):-5]
            if not isinstance(v, tuple) or not all(ok(x, kind) for x in v):
                raise FormatError(f"model configuration value {name!r} is not a list of {kind}")
            return tuple(float(x) for x in v) if kind == "float" else v
    return v  # a type this check does not know: _check_value has bounded it


def build_model(name: str, config: Any) -> VideoModel:
    spec = model_spec(name)
    return spec.cls(config)
