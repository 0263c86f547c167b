"""decode: a .nerv file -> video file(s), from the file alone."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..container import SECTION_KEYFRAMES, SECTION_WEIGHTS, NervFile, read_file
from ..errors import ConfigError, FormatError, InterruptedError_, OutputError
from ..fit import resolve_device
from ..io import open_writer
from ..io.video import Frames, VideoInfo
from ..model.base import VideoModel, config_from_dict, model_spec_by_id
from .layout import Layout
from .synthesis import synthesize
from .weights import unpack_weights

__all__ = ["DecodeResult", "decode", "load_model", "parse_frames", "select_video"]


@dataclass(frozen=True)
class DecodeResult:
    outputs: Tuple[str, ...]
    frames: int
    seconds: float
    device: str

    def to_dict(self) -> Dict[str, object]:
        return {"outputs": list(self.outputs), "frames": self.frames, "seconds": self.seconds, "device": self.device}


def load_model(nf: NervFile) -> Tuple[VideoModel, Layout]:
    """Rebuild the network from the header and load its dequantized weights."""
    spec = model_spec_by_id(nf.header.arch_id)
    model_info = nf.header.model
    config = config_from_dict(spec.config_cls, model_info.get("config"))
    layout = Layout.from_dict(model_info.get("layout"))
    try:
        with torch.device("meta"):
            probe = spec.cls(config)
        n = sum(p.numel() for p in probe.parameters())
    except Exception as exc:  # an inconsistent config from a damaged file
        raise FormatError(f"the file's model configuration is invalid ({exc})") from None
    if n > (1 << 31):
        raise FormatError("the file's model is implausibly large")
    limit = 4 * len(nf.section(SECTION_WEIGHTS)) * 8 + 4096  # no coder goes below ~1/4 bit per weight here
    if n > limit * 64:
        raise FormatError("the file's model is far larger than its weights section")
    model = spec.cls(config)
    model.load_state_dict(unpack_weights(nf.section(SECTION_WEIGHTS), model.state_dict(), nf.header.quant_bits))
    return model, layout


def parse_frames(spec: Optional[str], num_frames: int) -> Optional[Tuple[int, int]]:
    """'A:B' (B exclusive, either side optional, negatives from the end) or 'N' -> [a, b)."""
    if spec is None or spec == "":
        return None
    try:
        if ":" in spec:
            a_s, b_s = spec.split(":", 1)
            a = int(a_s) if a_s.strip() else 0
            b = int(b_s) if b_s.strip() else num_frames
        else:
            a = int(spec)
            b = a + 1
    except ValueError:
        raise ConfigError(f"--frames must look like A:B or N, got {spec!r}") from None
    a = a + num_frames if a < 0 else a
    b = b + num_frames if b < 0 else b
    if not 0 <= a < b <= num_frames:
        raise ConfigError(f"--frames {spec} is outside the video's {num_frames} frames")
    return a, b


def select_video(videos: Tuple[VideoInfo, ...], which: Optional[str]) -> Optional[int]:
    if which is None:
        return None
    for i, v in enumerate(videos):
        if v.name == which:
            return i
    try:
        i = int(which)
    except ValueError:
        raise ConfigError(f"no video named {which!r} in the file (it has: {', '.join(v.name for v in videos)})") \
            from None
    if not 0 <= i < len(videos):
        raise ConfigError(f"video index {i} is out of range (the file has {len(videos)})")
    return i


def _outputs(output: Path, videos: Tuple[VideoInfo, ...], chosen: List[int], ext: str) -> Dict[int, Path]:
    if len(chosen) == 1 and not (output.is_dir() or str(output).endswith(os.sep)):
        return {chosen[0]: output}
    output.mkdir(parents=True, exist_ok=True)
    return {i: output / f"{videos[i].name or f'video{i}'}{ext}" for i in chosen}


def decode(path: str | os.PathLike, output: str | os.PathLike, *, frames: Optional[str] = None,
           video: Optional[str] = None, device: str = "auto", batch: int = 8, fmt: Optional[str] = None,
           keyframe_weights: Optional[str] = None, progress: bool = False) -> DecodeResult:
    """Decode ``path`` into ``output`` (a file for one video; a folder for a collection)."""
    t0 = time.monotonic()
    nf = read_file(path)
    dev = resolve_device(device)
    model, layout = load_model(nf)
    videos = nf.header.videos
    vi = select_video(videos, video)
    chosen = [vi] if vi is not None else list(range(len(videos)))
    if frames is not None and len(chosen) != 1:
        raise ConfigError("--frames needs a single video; pick one with --video NAME|INDEX")
    rng = parse_frames(frames, videos[chosen[0]].num_frames) if frames is not None else None
    kf = None
    if model.needs_keyframes:
        from .keyframe_section import KeyframeReader
        kf = KeyframeReader(nf.section(SECTION_KEYFRAMES), videos, layout, weights=keyframe_weights).source
    targets = _outputs(Path(output), videos, chosen, ".mkv" if fmt == "mkv" else ".y4m")
    written = 0
    for i in chosen:
        v = videos[i]
        items = layout.items(videos, frames=rng, video=i)
        info = v.with_frames((rng[1] - rng[0]) if rng else v.num_frames)
        writer = open_writer(targets[i], info, fmt)
        try:
            with writer:
                for _, f, planes in synthesize(model, layout, videos, items, dev, batch=batch, keyframes=kf,
                                               frame_range=rng):
                    writer.write(Frames(tuple(p[None] for p in planes), v.pix_fmt))
                    written += 1
        except KeyboardInterrupt:
            raise InterruptedError_("interrupted while decoding; no partial output was left") from None
    return DecodeResult(tuple(str(targets[i]) for i in chosen), written, time.monotonic() - t0, str(dev))
