"""encode: video file(s) -> a .nerv file whose size on disk is the rate."""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import __version__
from ..container import SECTION_KEYFRAMES, SECTION_WEIGHTS, Header, pack, atomic_write_bytes
from ..errors import ConfigError, InputError, InterruptedError_, OutputError
from ..fit import FitConfig, FitData, fit, resolve_device
from ..io import read_video
from ..io.video import Frames, VideoInfo
from ..model.base import config_to_dict, model_spec
from .config import EncodeConfig, preset
from .layout import Layout, plan_layout
from .progress import ProgressBar, note
from .quality import FrameScores
from .rate import bytes_for_bpp, params_for_bytes
from .synthesis import synthesize
from .tiles import cut_items, keyframe_tiles
from .weights import pack_weights, quantized_state, unpack_weights

__all__ = ["EncodeResult", "encode", "DEFAULTS", "build_fit_data"]

# Model-specific defaults for batch size (items per step) and learning rate.
DEFAULTS = {"nerv": {"batch": 4, "lr": 5e-3}, "dnerv": {"batch": 2, "lr": 4e-3}}


@dataclass(frozen=True)
class EncodeResult:
    path: str
    bytes: int
    bpp: float                 # from the file's size on disk
    psnr: float                # PSNR-YUV (6:1:1, per-frame mean) of what the decoder will produce
    psnr_y: float
    frames: int
    params: int
    seconds: float
    fit_seconds: float
    model: str
    weights_bytes: int
    keyframe_bytes: int
    header_bytes: int
    device: str
    epochs: int
    videos: Tuple[str, ...] = ()
    keyframe_codec: Optional[str] = None
    target_bpp: Optional[float] = None

    def to_dict(self) -> Dict[str, object]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _unique_names(infos: List[VideoInfo]) -> List[VideoInfo]:
    seen: Dict[str, int] = {}
    out = []
    for v in infos:
        base = v.name or "video"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(v if n == 0 and v.name else VideoInfo(v.width, v.height, v.pix_fmt, v.fps, v.num_frames,
                                                         name=base if n == 0 else f"{base}_{n}", extra=v.extra))
    return out


def _read_inputs(inputs: Sequence[str | os.PathLike]) -> Tuple[List[VideoInfo], List[Frames]]:
    if not inputs:
        raise InputError("no input video given")
    if len(inputs) > 255:
        raise InputError("at most 255 videos in one file")
    infos, frames = [], []
    for p in inputs:
        info, fr = read_video(p)
        infos.append(info.with_frames(fr.num_frames))
        frames.append(fr)
    fmts = {v.pix_fmt.name for v in infos}
    if len(fmts) > 1:
        raise InputError(f"all videos of a collection must share one pixel format, got {', '.join(sorted(fmts))}")
    return _unique_names(infos), frames


def _check_output(output: Path, inputs: Sequence[str | os.PathLike], force: bool) -> None:
    for p in inputs:
        try:
            if Path(p).resolve() == output.resolve() or (output.exists() and os.path.samefile(p, output)):
                raise OutputError(f"the output {output} is also an input; choose another name")
        except OSError:
            pass
    if output.exists() and not force:
        raise OutputError(f"{output} exists; use --force to replace it (it is replaced only after a successful encode)")
    if output.is_dir():
        raise OutputError(f"{output} is a directory")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {output}: folder {folder} does not exist")
    try:  # really try (os.access says yes to root, even where the filesystem refuses)
        import tempfile
        fd, probe = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: folder {folder} is not writable ({exc.strerror or exc})") \
            from None


def build_fit_data(frames: Sequence[Frames], infos: Sequence[VideoInfo], layout: Layout, items, work_h: int,
                   work_w: int, keyframes: Optional[Dict[Tuple[int, int], np.ndarray]] = None) -> FitData:
    """The training items as tensors: integer targets cut to the working size, times, loss mask and
    (for D-NeRV) keyframe tiles from the full-resolution decoded keyframes ``(video, frame) -> (C, H, W)``."""
    fmt = infos[0].pix_fmt
    to_t = (lambda a: torch.from_numpy(a.astype(np.int16) if a.dtype != np.uint8 else a))  # noqa: E731
    ys, cs = cut_items(frames, layout, infos, items, work_h, work_w)
    kf = to_t(keyframe_tiles(keyframes, layout, infos, items, work_h, work_w)) if keyframes is not None else None
    return FitData(t=torch.from_numpy(layout.times(infos, items)), y=to_t(ys), c=None if cs is None else to_t(cs),
                   mask=_loss_mask(layout, infos, items), keyframes=kf, max_value=fmt.max_value,
                   chroma_shift=(fmt.log2_chroma_h, fmt.log2_chroma_w) if fmt.has_chroma else (0, 0))


def _loss_mask(layout: Layout, infos: Sequence[VideoInfo], items) -> torch.Tensor:
    """1 for frames the network must reproduce: real frames, minus substituted keyframes."""
    return torch.tensor([[float(ok and not (layout.substitute and layout.is_keyframe(infos[it.video], f)))
                          for f, ok in zip(it.frames, it.valid)] for it in items])


def _header(infos: Sequence[VideoInfo], arch_id: int, bits: int, config: object, layout: Layout) -> Header:
    return Header(tuple(infos), arch_id, bits, {"config": config_to_dict(config), "layout": layout.to_dict(),
                                                "encoder": f"nervcodec {__version__}"})


def _checkpointer(cfg: EncodeConfig, inputs, output: Path, model, data, fcfg, progress: bool):
    """The --checkpoint saver (None without one); refuses a checkpoint path that is an input or the output."""
    if not cfg.checkpoint:
        return None
    from ..fit.checkpoint import Checkpointer, fit_fingerprint
    cp = Path(cfg.checkpoint)
    for p in [*inputs, output]:
        if cp.resolve() == Path(p).resolve():
            raise ConfigError(f"--checkpoint {cp} would overwrite {p}; choose another name")
    ckpt = Checkpointer(cp, fit_fingerprint(config_to_dict(model.config), data, fcfg), cfg.checkpoint_seconds)
    if cfg.resume and not cp.exists():
        note(progress, f"no checkpoint at {cp} yet: starting from the beginning")
    return ckpt


def encode(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, cfg: EncodeConfig, *,
           progress: bool = False) -> EncodeResult:
    """Fit, quantize, entropy-code and write ``output``; return what was measured."""
    t_start = time.monotonic()
    output = Path(output)
    _check_output(output, inputs, cfg.force)
    spec = model_spec(cfg.model)
    device = resolve_device(cfg.device)
    infos, frames = _read_inputs(inputs)
    fmt = infos[0].pix_fmt
    dnerv = spec.cls.needs_keyframes
    if not dnerv and len({(v.width, v.height) for v in infos}) > 1:
        raise ConfigError("NeRV fits one frame size; use --model dnerv for a collection of different sizes")
    clip_len = cfg.clip_len if dnerv else 1
    # D-NeRV shows the decoded keyframes themselves at keyframe positions, so the network is
    # not asked to reproduce them (they are masked out of the loss below).
    layout = plan_layout(infos, clip_len, "video" if dnerv else "global", allow_patches=dnerv, substitute=dnerv)
    pixels = sum(v.pixels for v in infos)
    target_bpp = cfg.bpp if cfg.bpp is not None else (preset(cfg.preset) if cfg.preset else None)
    if cfg.params is None and target_bpp is None:
        target_bpp = preset("medium")
    budget = bytes_for_bpp(target_bpp, pixels) if target_bpp is not None else None

    # Keyframes first: their decoded pixels condition the network, and their bytes come off the budget.
    kf_plan = None
    if dnerv:
        from .keyframe_section import encode_keyframes
        kf_plan = encode_keyframes(infos, frames, layout, cfg, budget)
    kf_bytes = len(kf_plan.section) if kf_plan else 0

    # Parameter budget: explicit, or what the rate target leaves after header and keyframes.
    channels = fmt.num_planes
    if cfg.params is not None:
        params = cfg.params
    else:
        probe = spec.plan(layout.patch_h, layout.patch_w, channels, 100_000, clip_len=clip_len)
        overhead = len(pack(_header(infos, spec.arch_id, cfg.quant_bits, probe, layout), {SECTION_WEIGHTS: b""})) + 9
        left = budget - overhead - kf_bytes - (9 if kf_plan else 0)
        params = params_for_bytes(left, cfg.quant_bits, spec.name)
    config = spec.plan(layout.patch_h, layout.patch_w, channels, params, clip_len=clip_len)
    torch.manual_seed(cfg.seed)
    model = spec.cls(config)
    n_params = model.num_params()

    items = layout.items(infos)
    work_h, work_w = int(config.height), int(config.width)
    data = build_fit_data(frames, infos, layout, items, work_h, work_w,
                          kf_plan.decoded if kf_plan is not None else None)
    defaults = DEFAULTS.get(cfg.model, DEFAULTS["nerv"])
    fcfg = FitConfig(epochs=cfg.epochs, batch=cfg.batch or defaults["batch"], lr=cfg.lr or defaults["lr"],
                     loss=cfg.loss, seed=cfg.seed)
    note(progress, f"fitting {spec.name} with {n_params} parameters to {sum(v.num_frames for v in infos)} frames "
                   f"on {device} ({cfg.epochs} epochs)")
    ckpt = _checkpointer(cfg, inputs, output, model, data, fcfg, progress)
    try:
        with ProgressBar(progress, "fitting") as bar, (ckpt or contextlib.nullcontext()):
            fres = fit(model, data, fcfg, device, progress=bar, checkpoint=ckpt,
                       resume=ckpt.load() if ckpt is not None and cfg.resume else None)
    except KeyboardInterrupt:
        saved = (f"; fitting state saved in {cfg.checkpoint} (continue with --resume)"
                 if ckpt is not None and ckpt.saved_step is not None else "")
        raise InterruptedError_(f"interrupted while fitting; nothing was written{saved}") from None
    del data

    # Quantize, code, and load the dequantized weights: report what the decoder will see.
    model = model.cpu()
    q_items = quantized_state(model.state_dict(), cfg.quant_bits)
    weights = pack_weights(q_items)
    model.load_state_dict(unpack_weights(weights, model.state_dict(), cfg.quant_bits))
    sections = {SECTION_WEIGHTS: weights}
    if kf_plan is not None:
        sections[SECTION_KEYFRAMES] = kf_plan.section
    header = _header(infos, spec.arch_id, cfg.quant_bits, config, layout)
    data_bytes = pack(header, sections)

    scores = FrameScores(fmt)
    kf_source = kf_plan.source if kf_plan is not None else None
    for vi, f, planes in synthesize(model, layout, infos, items, device, batch=max(fcfg.batch, 8),
                                    keyframes=kf_source, keyframe_planes=kf_plan.planes if kf_plan else None):
        scores.add([p[f] for p in frames[vi].planes], planes)
    atomic_write_bytes(output, data_bytes)
    if ckpt is not None:
        ckpt.remove()  # the file is written: nothing is left to resume
    size = output.stat().st_size
    return EncodeResult(
        path=str(output), bytes=size, bpp=size * 8 / pixels, psnr=scores.psnr_yuv, psnr_y=scores.psnr_y,
        frames=sum(v.num_frames for v in infos), params=n_params, seconds=time.monotonic() - t_start,
        fit_seconds=fres.seconds, model=spec.name, weights_bytes=len(weights), keyframe_bytes=kf_bytes,
        header_bytes=size - len(weights) - kf_bytes, device=str(device), epochs=cfg.epochs,
        videos=tuple(v.name for v in infos), keyframe_codec=kf_plan.codec_name if kf_plan else None,
        target_bpp=target_bpp)
