"""Encode stage 1, plan: inputs, layout, keyframes, model configuration and byte budget.

Everything the later stages need is decided here, before any fitting starts, so
that a bad output name, an unreadable input or an impossible rate fails in
seconds.  D-NeRV's keyframes are coded here too: their decoded pixels condition
the network and their bytes come off the budget before the network is sized.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..container import SECTION_KEYFRAMES, SECTION_WEIGHTS, make_header, pack
from ..container.nervfile import MAX_VIDEOS
from ..device import resolve_device
from ..errors import ConfigError, InputError, OutputError
from ..fit import FitConfig
from ..distributed import current, rank_device
from ..fsutil import check_writable
from ..io import open_video, parse_fps, read_video
from ..io.cache import DiskCache
from ..io.reader import RAW_EXTENSIONS, parse_size
from ..io.png import is_png_sequence
from ..io.video import Frames, VideoInfo
from ..model import ModelSpec, model_spec
from ..quant.qat import TENSOR_SIDE_BITS
from ..tasks import MaskSpec, fill_holes, parse_holdout, parse_mask
from ..tasks.masks import chroma_holes
from .config import EncodeConfig
from .effort import effort_steps
from .cliplen import DEFAULT_CLIP_LEN, choose_clip_len
from .keyframes import KeyframePlan, encode_keyframes, keyframe_share
from .progress import note
from .layout import Layout, plan_layout
from .scenecut import find_cuts
from .rate import LEARNED_BITS_PER_PARAM, bits_per_param, bytes_for_bpp, params_for_bytes

__all__ = ["EncodePlan", "plan", "read_inputs", "check_output"]

PLANNER_RESERVE = 9  # bytes the rate planner keeps spare beyond the measured overhead (as it always has)


@dataclass(frozen=True)
class EncodePlan:
    """What will be fitted, to what, how, and within which budget (stage 1's output)."""

    cfg: EncodeConfig
    inputs: Tuple[str, ...]
    output: Path
    spec: ModelSpec
    device: torch.device
    infos: Tuple[VideoInfo, ...]
    frames: Tuple[Frames, ...]
    layout: Layout
    keyframes: Optional[KeyframePlan]   # D-NeRV: coded keyframes, their section and decoded pixels
    config: Any                         # the model's frozen configuration
    fit: FitConfig
    target_bpp: Optional[float]         # None when sized by --params
    budget: Optional[int]               # bytes of the whole file, from target_bpp
    weight_budget: Optional[int] = None  # bytes of it left for the weights section
    visible: Optional[Tuple[Frames, ...]] = None  # what the fit and the keyframes may see (None: frames)
    mask: Optional[MaskSpec] = None     # --mask: holes kept out of the fit
    cache: Optional[DiskCache] = None   # --cache-dir: frames, keyframes and items on disk (closed by encode)
    clip_len_scores: Tuple[Tuple[int, float], ...] = ()  # the clip lengths weighed, with their scores (cliplen.py)

    @property
    def seen_frames(self) -> Tuple[Frames, ...]:
        """The inputs as the encoder may use them: held-out frames blanked, holes filled from around them."""
        return self.visible if self.visible is not None else self.frames

    @property
    def pixels(self) -> int:
        return sum(v.pixels for v in self.infos)

    @property
    def num_frames(self) -> int:
        return sum(v.num_frames for v in self.infos)

    @property
    def keyframe_bytes(self) -> int:
        return len(self.keyframes.section) if self.keyframes is not None else 0


def _unique_names(infos: Sequence[VideoInfo]) -> List[VideoInfo]:
    seen: Dict[str, int] = {}
    out = []
    for v in infos:
        base = v.name or "video"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(v if n == 0 and v.name else VideoInfo(v.width, v.height, v.pix_fmt, v.fps, v.num_frames,
                                                         name=base if n == 0 else f"{base}_{n}", extra=v.extra))
    return out


def read_inputs(inputs: Sequence[str | os.PathLike], fps: Optional[str] = None,
                cache: Optional[DiskCache] = None,
                raw: Optional[Tuple[int, int, str]] = None) -> Tuple[Tuple[VideoInfo, ...], Tuple[Frames, ...]]:
    """Read every input video; a collection must share one pixel format; names are made unique.

    ``fps`` is the frame rate of the PNG-sequence and raw inputs (other formats carry their own rate);
    ``raw`` = (width, height, pixel format) of the raw ``.yuv`` inputs.
    With a ``cache`` each video is streamed into it 16 frames at a time and comes back as
    frames read on demand, so a collection never sits in memory whole.
    """
    if not inputs:
        raise InputError("no input video given")
    if len(inputs) > MAX_VIDEOS:
        raise InputError(f"at most {MAX_VIDEOS} videos in one file")
    rate = parse_fps(fps) if fps is not None else None
    pngs = [is_png_sequence(os.fspath(p)) or os.fspath(p).lower().endswith(RAW_EXTENSIONS) for p in inputs]
    if rate is not None and not any(pngs):
        raise ConfigError("--fps sets the rate of PNG-sequence and raw .yuv inputs; the inputs given carry their "
                          "own rate")
    if raw is not None and not any(os.fspath(p).lower().endswith(RAW_EXTENSIONS) for p in inputs):
        raise ConfigError("--size and --pix-fmt describe raw .yuv inputs; the inputs given have headers")
    infos, frames = [], []
    for k, (p, png) in enumerate(zip(inputs, pngs)):
        fmt_raw = raw if os.fspath(p).lower().endswith(RAW_EXTENSIONS) else None
        if cache is None:
            info, fr = read_video(p, rate if png else None, fmt_raw)
        else:
            with open_video(p, rate if png else None, fmt_raw) as reader:
                info = reader.info
                fr = cache.store_frames(reader.iter_frames(16), info.pix_fmt, info.width, info.height, f"v{k}.raw")
        infos.append(info.with_frames(fr.num_frames))
        frames.append(fr)
    fmts = {v.pix_fmt.name for v in infos}
    if len(fmts) > 1:
        raise InputError(f"all videos of a collection must share one pixel format, got {', '.join(sorted(fmts))}")
    return tuple(_unique_names(infos)), tuple(frames)


def check_output(output: Path, inputs: Sequence[str | os.PathLike], force: bool) -> None:
    """Refuse, before any work, an output that is not a .nerv name, is an input, exists without --force,
    or cannot be written (a typo such as ``encode in.y4m other.y4m --force`` must not replace a video)."""
    for p in inputs:
        try:
            if Path(p).resolve() == output.resolve() or (output.exists() and os.path.samefile(p, output)):
                raise OutputError(f"the output {output} is also an input; choose another name")
        except OSError:
            pass
    if output.suffix.lower() != ".nerv":
        raise OutputError(f"the output {output} does not end in .nerv; nervcodec writes .nerv files (name it "
                          f"{output.with_suffix('.nerv').name})")
    if output.exists() and not force:
        raise OutputError(f"{output} exists; use --force to replace it (it is replaced only after a successful encode)")
    if output.is_dir():
        raise OutputError(f"{output} is a directory")
    check_writable(output)


def model_options(cfg: EncodeConfig, infos: Sequence[VideoInfo], clip_len: int) -> Dict[str, Any]:
    """What a model's planner is told besides the size: clip length, frame count, group length."""
    return {"clip_len": clip_len, "frames": sum(v.num_frames for v in infos), "group": cfg.gop}


def smallest_model(spec: ModelSpec, height: int, width: int, channels: int, options: Dict[str, Any]) -> Optional[int]:
    """Parameters of the smallest model ``spec`` plans for this working size (None above 10^8)."""
    p = 1000.0
    while p < 1e8:
        try:
            cfg = spec.plan(height, width, channels, int(p), **options)
            with torch.device("meta"):
                return spec.cls(cfg).num_params()
        except ConfigError:
            p *= 1.15
    return None


def _too_low(cfg: EncodeConfig, spec: ModelSpec, layout: Layout, channels: int, options: Dict[str, Any],
             budget: int, weights: Optional[int], pixels: int, target_bpp: float, exc: ConfigError) -> str:
    """Why a target rate cannot be met, and the lowest one that can: the smallest model this clip allows,
    at the measured bits per weight, plus what the rate spends on keyframes (their share) and the header."""
    smallest = smallest_model(spec, layout.patch_h, layout.patch_w, channels, options)
    if smallest is None or weights is None:
        return str(exc)
    per = bits_per_param(cfg.quant_bits, spec)
    share = keyframe_share(cfg) if spec.cls.needs_keyframes else 0.0
    overhead = max(budget - weights - int(budget * share), 0)
    need = (smallest * per / 8 + overhead) / (1 - share)
    lowest = math.ceil(need * 8 / pixels * 1000) / 1000
    what = ("--bpp" if cfg.bpp is not None else
            (f"--rate-preset {cfg.rate_preset}" if cfg.rate_preset is not None else "the default rate"))
    return (f"{what} ({target_bpp:g} bpp) leaves {max(weights, 0)} bytes for the network, about "
            f"{max(int(weights * 8 / per), 0)} parameters, and the smallest {spec.name} model for "
            f"{layout.patch_w}x{layout.patch_h} frames has {smallest}: --bpp {lowest:g} is sure to fit it"
            + (" (or a lower --keyframe-share)" if spec.cls.needs_keyframes else "")
            + ", or set the network's size with --params")


def _global_batch(asked: int, default: int) -> int:
    """Items per step.  Under torchrun it is the global batch, split evenly over the processes: a
    --batch that does not divide is refused here, before any work; the model's default is rounded
    up to the next multiple of the process count."""
    d = current()
    if d is None:
        return asked or default
    if asked:
        if asked % d.world:
            raise ConfigError(f"--batch {asked} does not divide over {d.world} processes: --batch is the global "
                              f"batch, give a multiple of {d.world}")
        return asked
    return -(-default // d.world) * d.world


def check_reference(reference: str, infos: Sequence[VideoInfo]) -> None:
    """A --reference must be one clip of the input's size, pixel format and length."""
    if len(infos) != 1:
        raise ConfigError("--reference is the clean version of a single input video; give one input")
    with open_video(reference) as reader:
        r = reader.info
    v = infos[0]
    if (r.width, r.height, r.pix_fmt) != (v.width, v.height, v.pix_fmt) or r.num_frames not in (0, v.num_frames):
        raise InputError(f"the reference {reference} ({r.width}x{r.height} {r.pix_fmt.name}, {r.num_frames} frames) "
                         f"does not match the input ({v.width}x{v.height} {v.pix_fmt.name}, {v.num_frames} frames)")


def _check_fixed(spec: ModelSpec, config: Any, weights: int, budget: int, pixels: int, cfg: EncodeConfig) -> None:
    """A model the video sizes (latent grids) still has a floor: its weights section with every latent zero."""
    weights_at_least, tensors = spec.floor_size(config)
    need = (LEARNED_BITS_PER_PARAM * weights_at_least + TENSOR_SIDE_BITS * tensors) / 8
    if weights < need:
        lowest = math.ceil((budget - weights + need) * 8 / pixels * 1000) / 1000
        raise ConfigError(f"the target rate ({cfg.target_bpp:g} bpp) leaves {max(weights, 0)} bytes for the "
                          f"{spec.name} model, which needs at least {math.ceil(need)} for its synthesis network "
                          f"and tensors: --bpp {lowest:g} is the least that fits (a longer or larger video lowers it)")


def _weight_budget(cfg: EncodeConfig, spec: ModelSpec, infos: Sequence[VideoInfo], layout: Layout,
                   kf: Optional[KeyframePlan], budget: int, options: Dict[str, Any]) -> int:
    """Bytes the budget leaves for the weights section: the budget less the size of the file packed
    with a probe model's header, the keyframe section and an empty weights section."""
    channels = infos[0].pix_fmt.num_planes
    probe = spec.plan(layout.patch_h, layout.patch_w, channels, 100_000, **options)
    header = make_header(infos, spec, cfg.quant_code, probe, layout.to_dict())
    sections = {SECTION_WEIGHTS: b"", **({SECTION_KEYFRAMES: kf.section} if kf is not None else {})}
    return budget - len(pack(header, sections)) - PLANNER_RESERVE


def plan(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, cfg: EncodeConfig,
         progress: bool = False) -> EncodePlan:
    """Stage 1: check the output, read the inputs, cut them into items, code the keyframes, size the model
    (``progress``: say on stderr when the keyframes are being coded, which takes minutes on a large clip)."""
    output = Path(output)
    check_output(output, inputs, cfg.force)
    spec = model_spec(cfg.model)
    device = rank_device(resolve_device(cfg.device))   # under torchrun: one GPU per rank
    cache = _cache(cfg)
    try:
        return _plan(inputs, output, cfg, spec, device, cache, progress)
    except BaseException:
        if cache is not None:
            cache.close()
        raise


def _cache(cfg: EncodeConfig) -> Optional[DiskCache]:
    if cfg.cache_dir is None:
        return None
    d = current()
    return DiskCache(cfg.cache_dir, f"-rank{d.rank}" if d is not None else "")


def _plan(inputs, output: Path, cfg: EncodeConfig, spec: ModelSpec, device: torch.device,
          cache: Optional[DiskCache], progress: bool = False) -> EncodePlan:
    raw = (*parse_size(cfg.size), cfg.pix_fmt) if cfg.size is not None else None
    if cfg.verify and len(inputs) > 1 and any(x is not None for x in (cfg.holdout, cfg.mask, cfg.figure)):
        raise ConfigError("--verify scores --holdout, --mask and --figure on a single input video; encode the "
                          "collection without --verify, or verify one video at a time")
    infos, frames = read_inputs(inputs, cfg.fps, cache, raw)
    if cfg.reference is not None:
        check_reference(cfg.reference, infos)
    keyframed = spec.cls.needs_keyframes
    if not keyframed:
        given = [f"--{n.replace('_', '-')}" for n in ("keyframe_codec", "keyframe_quality", "keyframe_share",
                                                     "keyframe_weights") if getattr(cfg, n) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the keyframes of a "
                              f"keyframe-conditioned model; {spec.name} has none (use --model dnerv)")
    # a grouped model (latent grids) covers whole frames on one time axis across the videos, keyframes or not
    whole_frames = not keyframed or spec.grouped
    if whole_frames and len({(v.width, v.height) for v in infos}) > 1:
        raise ConfigError(f"{spec.name} fits one frame size; use --model dnerv for a collection of different sizes")
    if cfg.gop is not None and not spec.grouped:
        raise ConfigError(f"--gop sets the group length of a model with groups of frames; {spec.name} has none "
                          f"(use --model latent-grid)")
    # A keyframe-conditioned model shows the decoded keyframes themselves at keyframe positions,
    # so the network is not asked to reproduce them (they are masked out of the loss).
    holdout = parse_holdout(cfg.holdout) if cfg.holdout is not None else None
    # scene cuts: found on what the encoder may see, so not with a holdout or a mask (both blank pixels)
    cuts = (tuple(find_cuts(fr, v) for v, fr in zip(infos, frames))
            if keyframed and cfg.scenecut and holdout is None and cfg.mask is None else ())

    def make_layout(d: int) -> Layout:
        return plan_layout(infos, d, "global" if whole_frames else "video", allow_patches=not whole_frames,
                           substitute=keyframed, holdout=holdout, cuts=cuts)

    pixels = sum(v.pixels for v in infos)
    target_bpp = cfg.target_bpp
    budget = bytes_for_bpp(target_bpp, pixels) if target_bpp is not None else None
    mask = parse_mask(cfg.mask) if cfg.mask is not None else None
    scores: Tuple[Tuple[int, float], ...] = ()
    steps = None if cfg.epochs is not None else (cfg.steps or effort_steps(cfg.preset))
    _global_batch(cfg.batch, spec.batch)       # a --batch that does not divide is refused before any work

    def batch_for(d: int) -> int:
        return _global_batch(cfg.batch, spec.default_batch(d))

    if _chooses_clip_len(cfg, spec, budget, holdout, mask, cache):
        note(progress, f"coding the keyframes every {', '.join(map(str, spec.clip_lens))} frames to choose "
                       f"the clip length")
        choice = choose_clip_len(spec.clip_lens, make_layout,
                                 lambda lay: encode_keyframes(infos, frames, lay, cfg, budget), infos, frames,
                                 steps, batch_for)
        clip_len, layout, kf, scores = choice.clip_len, choice.layout, choice.keyframes, choice.scores
        visible = None
    else:
        clip_len = (cfg.clip_len or DEFAULT_CLIP_LEN) if keyframed else 1
        layout = make_layout(clip_len)
        visible = _visible(infos, frames, layout, mask, cache) if (mask is not None or holdout is not None) else None
        if keyframed:
            note(progress, f"coding the keyframes (every {clip_len} frames)")
        kf = encode_keyframes(infos, visible or frames, layout, cfg, budget, cache) if keyframed else None
    options = model_options(cfg, infos, clip_len)
    weights = _weight_budget(cfg, spec, infos, layout, kf, budget, options) if budget is not None else None
    channels = infos[0].pix_fmt.num_planes
    if spec.floor_size is not None and cfg.params is not None:
        raise ConfigError(f"--params sizes a network; the {spec.name} model is sized by the video and its rate by "
                          f"--bpp (or --lambda)")
    try:
        if spec.floor_size is not None:   # the video sizes the latents, the budget the network; the rate term
            # sets what they cost (no budget with --lambda: the model's own default network)
            room = (int(max(weights, 0) * 8 / bits_per_param(cfg.quant_bits, spec))
                    if weights is not None and cfg.lam is None else 0)
            config = spec.plan(layout.patch_h, layout.patch_w, channels, room, **options)
        else:
            params = cfg.params if cfg.params is not None else params_for_bytes(weights, cfg.quant_bits, spec)
            config = spec.plan(layout.patch_h, layout.patch_w, channels, params, **options)
    except ConfigError as exc:
        if cfg.params is not None or budget is None:
            raise
        raise ConfigError(_too_low(cfg, spec, layout, channels, options, budget, weights, pixels, target_bpp, exc)) \
            from None
    if spec.floor_size is not None and weights is not None and cfg.lam is None:   # --lambda: no weights budget
        _check_fixed(spec, config, weights, budget, pixels, cfg)
    fit = FitConfig(epochs=cfg.epochs or 1, steps=steps, batch=batch_for(layout.clip_len),
                    lr=cfg.lr or spec.lr, loss=cfg.loss, seed=cfg.seed, sample_rate=cfg.sampled_rate)
    return EncodePlan(cfg=cfg, inputs=tuple(os.fspath(p) for p in inputs), output=output, spec=spec, device=device,
                      infos=infos, frames=frames, layout=layout, keyframes=kf, config=config, fit=fit,
                      target_bpp=target_bpp, budget=budget, weight_budget=weights, visible=visible, mask=mask,
                      cache=cache, clip_len_scores=scores)


def _chooses_clip_len(cfg: EncodeConfig, spec: ModelSpec, budget: Optional[int], holdout, mask,
                      cache: Optional[DiskCache]) -> bool:
    """Whether the planner chooses the clip length (:mod:`.cliplen`): not given, the model has
    candidates, and there is a keyframe budget to divide (a rate, no fixed keyframe quality).  Not
    with a holdout or a mask (which also fix where keyframes may fall), nor with a disk cache (the
    candidates' decoded keyframes would share its files)."""
    return (cfg.clip_len is None and len(spec.clip_lens) > 1 and budget is not None
            and cfg.keyframe_quality is None and holdout is None and mask is None and cache is None)


def video_holes(mask: MaskSpec, v: VideoInfo) -> np.ndarray:
    """(N, H, W) bool: the holes of every frame of video ``v``."""
    return np.stack([mask.holes(f, v.height, v.width) for f in range(v.num_frames)])


def _visible(infos: Sequence[VideoInfo], frames: Sequence[Frames], layout: Layout,
             mask: Optional[MaskSpec], cache: Optional[DiskCache] = None) -> Tuple[Frames, ...]:
    """The inputs with what the encoder must not see taken out, before anything (keyframes, fit)
    reads them: held-out frames set to zero, holes filled from the visible pixels around them.
    Done 16 frames at a time (into the cache, when there is one)."""
    out = []
    for vi, (v, fr) in enumerate(zip(infos, frames)):
        if mask is not None:
            mask.check(v.width, v.height, v.num_frames)
        chunks = (_hide(v, fr, layout, mask, a, min(a + 16, v.num_frames)) for a in range(0, v.num_frames, 16))
        if cache is not None:
            out.append(cache.store_frames(chunks, v.pix_fmt, v.width, v.height, f"visible{vi}.raw"))
        else:
            out.append(Frames.concat(list(chunks)))
    return tuple(out)


def _hide(v: VideoInfo, fr: Frames, layout: Layout, mask: Optional[MaskSpec], a: int, b: int) -> Frames:
    fmt = v.pix_fmt
    planes = [np.array(p[a:b]) for p in fr.planes]
    if mask is not None:
        holes = np.stack([mask.holes(f, v.height, v.width) for f in range(a, b)])
        shift = (fmt.log2_chroma_h, fmt.log2_chroma_w)
        planes = [fill_holes(p, holes if k == 0 else chroma_holes(holes, shift), fmt.max_value)
                  for k, p in enumerate(planes)]
    if layout.split is not None:
        hidden = [f - a for f in range(a, b) if not layout.split.seen(f)]
        for p in planes:
            p[hidden] = 0
    return Frames(tuple(planes), fmt)
