"""decode: a .nerv file -> video file(s), from the file alone."""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..container import (SECTION_KEYFRAMES, SECTION_WEIGHTS, VERSION, NervFile, read_file, read_model_header,
                         unpack_weights)
from ..device import resolve_device
from ..errors import ConfigError, FormatError, InterruptedError_, OutputError
from ..distributed import current, init_from_env, launched, rank_device
from ..io import open_writer
from ..io.video import Frames, VideoInfo
from ..model import ModelSpec, VideoModel
from ..textutil import plural
from .layout import Layout
from .synthesis import synthesize

__all__ = ["DecodeResult", "decode", "load_model", "build_network", "parse_frames", "select_video"]


@dataclass(frozen=True)
class DecodeResult:
    outputs: Tuple[str, ...]
    frames: int
    seconds: float
    device: str

    def to_dict(self) -> Dict[str, object]:
        return {"outputs": list(self.outputs), "frames": self.frames, "seconds": self.seconds, "device": self.device}


def build_network(spec: ModelSpec, config: Any, weights: bytes, major: int = VERSION[0],
                  quant_bits: int = 0) -> VideoModel:
    """The network of ``config`` with the dequantized weights of a weights section of format ``major``.

    The decoder calls it after :func:`load_model` has checked an untrusted file; the
    encoder calls it on the section it has just coded, to measure what decodes."""
    # The network is made on the meta device (shapes only: no initialisation, no zeroed latents to
    # overwrite) and the dequantized tensors become its parameters (assign); every tensor of its state
    # must come from the section (a tensor the section does not hold would stay shapes-only).
    with torch.device("meta"):
        model = spec.cls(config)
    model.load_state_dict(unpack_weights(weights, model.state_dict(), major, quant_bits), assign=True)
    missing = [name for name, t in model.state_dict().items() if t.is_meta]
    if missing:
        raise FormatError(f"the weights section does not hold {missing[0]} of the {spec.name} network")
    return model


def meta_network(nf: NervFile) -> VideoModel:
    """The file's network on the meta device (shapes only, nothing allocated), checked to be buildable
    and plausibly sized for its weights section (no coder goes below ~1/4 bit per weight here).

    A model whose size follows the video (``ModelSpec.floor_size``: latent grids) is held to that only
    for the weights that are not latents: its latents are as many as the header's frames and frame size
    make them (which :func:`_check_geometry` holds the configuration to), and a latent map that is all
    zero costs a few bytes however large it is (bikes at 0.02 bpp: 62M latents in a weights section of
    about 24 kB)."""
    mh = read_model_header(nf.header)
    try:
        with torch.device("meta"):
            probe = mh.spec.cls(mh.config)
        n = sum(p.numel() for p in probe.parameters())
        coded = n if mh.spec.floor_size is None else mh.spec.floor_size(mh.config)[0]
    except Exception as exc:  # an inconsistent config from a damaged file
        raise FormatError(f"the file's model configuration is invalid ({exc})") from None
    if n > (1 << 31):
        raise FormatError("the file's model is implausibly large")
    if coded > 64 * (4 * len(nf.section(SECTION_WEIGHTS)) * 8 + 4096):
        raise FormatError("the file's model is far larger than its weights section")
    return probe


def load_model(nf: NervFile) -> Tuple[VideoModel, Layout]:
    """Check the header's model against the file (bounds, geometry, a shape-only dry run), then
    rebuild the network and load its dequantized weights."""
    spec, config, layout = check_model(nf)
    return build_network(spec, config, nf.section(SECTION_WEIGHTS), nf.version[0], nf.header.quant_bits), layout


def check_model(nf: NervFile) -> Tuple[ModelSpec, Any, Layout]:
    """:func:`load_model`'s checks of an untrusted file, without decoding the weights: (the model's spec,
    its configuration, the layout)."""
    mh = read_model_header(nf.header)
    spec, config = mh.spec, mh.config
    layout = Layout.from_dict(mh.layout)
    layout.check_videos(nf.header.videos)
    probe = meta_network(nf)
    _check_geometry(nf, spec, config, layout)
    _dry_run(probe, nf, layout)
    return spec, config, layout


def _dry_run(probe: VideoModel, nf: NervFile, layout: Layout) -> None:
    """Run the network once on meta tensors (shapes only: no memory, no arithmetic).

    A configuration whose values are each plausible can still describe a network
    that cannot run (a negative upsampling factor whose square is positive, widths
    that do not chain); this finds it here, as a FormatError, and checks that the
    output has the working size the layout expects.
    """
    fmt = nf.header.videos[0].pix_fmt
    c, h, w = fmt.num_planes, int(probe.config.height), int(probe.config.width)
    try:
        with torch.device("meta"), torch.no_grad():
            kf = torch.zeros(1, 2, c, h, w) if probe.needs_keyframes else None
            shape = tuple(probe(torch.zeros(1, layout.clip_len), kf).shape)
    except Exception as exc:
        raise FormatError(f"the file's model configuration is invalid ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if shape != (1, layout.clip_len, c, h, w):
        raise FormatError(f"the file's model makes frames of shape {shape}, not {(1, layout.clip_len, c, h, w)}")


MAX_PATCHES = 64 * 64   # plan_layout cuts a frame into at most 64 x 64 patches


def _check_geometry(nf: NervFile, spec, config, layout: Layout) -> None:
    """The header's videos, layout and model must fit together before anything is sized from them.

    Each of these could be parsed on its own from a damaged (but checksummed) file;
    only together do they bound what decoding allocates: the frame planes (patch
    grid), the model's working tiles and the keyframe tensors.
    """
    videos = nf.header.videos
    fmt = videos[0].pix_fmt
    if any(v.pix_fmt != fmt for v in videos):
        raise FormatError("the file's videos do not share one pixel format")
    channels = getattr(config, "channels", fmt.num_planes)
    if channels != fmt.num_planes:
        raise FormatError(f"the file's model makes {channels} planes, {fmt.name} has {fmt.num_planes}")
    clip_len = getattr(config, "clip_len", getattr(spec.cls, "clip_len", 1))
    if clip_len != layout.clip_len:
        raise FormatError(f"the file's model works on clips of {clip_len} frames, its layout on {layout.clip_len}")
    frames = getattr(config, "frames", None)   # models whose tensors follow the video's length
    if frames is not None and frames != nf.header.total_frames:
        raise FormatError(f"the file's model holds {frames} frames, its videos {nf.header.total_frames}")
    work_h, work_w = int(config.height), int(config.width)
    if not (layout.patch_h <= work_h and layout.patch_w <= work_w
            and work_h * work_w <= 64 * layout.patch_h * layout.patch_w + 65536):
        raise FormatError(f"the file's model works at {work_w}x{work_h}, which does not fit its "
                          f"{layout.patch_w}x{layout.patch_h} patches")
    for v in videos:
        rows, cols = layout.patch_grid(v)
        if rows * cols > MAX_PATCHES:
            raise FormatError(f"the file's video {v.name!r} ({v.width}x{v.height}) needs {rows * cols} patches "
                              f"of {layout.patch_w}x{layout.patch_h} (at most {MAX_PATCHES})")


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
    if 0 <= a <= num_frames and 0 <= b <= num_frames and b <= a:
        raise ConfigError(f"--frames {spec} is an empty range (frames {a} to {b}, end excluded)")
    if not 0 <= a < b <= num_frames:
        raise ConfigError(f"--frames {spec} is outside the video's {plural(num_frames, 'frame')}")
    return a, b


def select_videos(videos: Tuple[VideoInfo, ...], which: Optional[str]) -> List[int]:
    """Every video, one (``--video NAME|INDEX``) or a range of indices (``--video A:B``, B excluded)."""
    if which is None:
        return list(range(len(videos)))
    if ":" in which and not any(v.name == which for v in videos):
        try:
            a_s, b_s = which.split(":", 1)
            a = int(a_s) if a_s.strip() else 0
            b = int(b_s) if b_s.strip() else len(videos)
        except ValueError:
            raise ConfigError(f"--video must be a name, an index or a range A:B of indices, got {which!r}") from None
        if not 0 <= a < b <= len(videos):
            raise ConfigError(f"--video {which} is not a range of the file's {plural(len(videos), 'video')}")
        return list(range(a, b))
    return [select_video(videos, which)]


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


def _file_name(videos: Tuple[VideoInfo, ...], i: int) -> str:
    """A video's name as a file name inside the output folder: never a path, never a duplicate."""
    name = videos[i].name
    bad = not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith(".")
    if bad or any(v.name == name for v in videos[:i]):
        return f"video{i}"
    return name


def _outputs(output: str | os.PathLike, videos: Tuple[VideoInfo, ...], chosen: List[int],
             ext: str) -> Tuple[Dict[int, Path], Optional[Path]]:
    """The file of each chosen video, and the folder that holds them (None for a single file)."""
    text = os.fspath(output)
    folder = Path(text)
    if len(chosen) == 1 and not (folder.is_dir() or text.endswith(("/", os.sep))):
        return {chosen[0]: folder}, None
    if not folder.is_dir() and folder.suffix.lower() in (".y4m", ".mkv", ".png", ".yuv", ".mp4"):
        raise ConfigError(f"the file holds {len(chosen)} videos and -o {text} names one file: give a folder "
                          f"(-o {folder.with_suffix('')}/) for one file per video, or pick one with --video")
    return {i: folder / f"{_file_name(videos, i)}{ext}" for i in chosen}, folder


WINDOW_CLIPS = 512  # clips per decoding window: the item list never grows with the video's length


def _windows(rng: Tuple[int, int], layout: Layout, v: VideoInfo, vi: int, batch: int) -> List[Tuple[int, int]]:
    """Split frames [a, b) of video ``vi`` at clip boundaries into windows of a multiple of ``batch``
    clips, so that the synthesis batches are the same as for one window over the whole range."""
    a, b = rng
    step = batch * max(1, WINDOW_CLIPS // batch)
    first, end = layout.clip_range(v, vi, rng)
    bounds = [layout.clip_start(v, vi, c) for c in range(first, end, step)] + [b]
    return [(max(s, a), min(e, b)) for s, e in zip(bounds[:-1], bounds[1:])]


def decode(path: str | os.PathLike, output: str | os.PathLike, *, frames: Optional[str] = None,
           video: Optional[str] = None, device: str = "auto", batch: int = 8, fmt: Optional[str] = None,
           keyframe_weights: Optional[str] = None, progress: bool = False, fps_scale: int = 1,
           force: bool = False, split: bool = True) -> DecodeResult:
    """Decode ``path`` into ``output`` (a file for one video; a folder for a collection).

    ``fps_scale`` K > 1 up-converts the frame rate: K frames per source frame, at times
    f, f + 1/K, ..., f + (K-1)/K (the network rendered between the frames it was fitted on);
    the frames after the video's last one repeat it.  An existing output file is replaced only with
    ``force`` (the same rule as encode's; the new file replaces it only once complete).  Under
    torchrun the videos are dealt over the ranks unless ``split`` is False (one process decoding
    everything itself, as ``encode --verify`` does on rank 0)."""
    t0 = time.monotonic()
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if not 1 <= fps_scale <= 16:
        raise ConfigError(f"--fps-scale must be in 1..16, got {fps_scale}")
    nf = read_file(path)
    dev = rank_device(resolve_device(device)) if split else resolve_device(device)
    spec, config, layout = check_model(nf)
    videos = nf.header.videos
    chosen = select_videos(videos, video)
    if frames is not None and len(chosen) != 1:
        raise ConfigError("--frames needs a single video; pick one with --video NAME|INDEX")
    rng = parse_frames(frames, videos[chosen[0]].num_frames) if frames is not None else None
    kf = kf_planes = None
    if spec.cls.needs_keyframes:
        from .keyframes import KeyframeReader
        reader = KeyframeReader(nf.section(SECTION_KEYFRAMES), videos, layout, weights=keyframe_weights)
        if not (split and launched()):     # one process: the first video's keyframe stream decodes (ffmpeg)
            reader.prefetch(chosen[:1])    # while the weights are entropy-decoded below
        kf, kf_planes = reader.source, reader.planes
    model = build_network(spec, config, nf.section(SECTION_WEIGHTS), nf.version[0], nf.header.quant_bits)
    targets, folder = _outputs(output, videos, chosen, ".mkv" if fmt == "mkv" else ".y4m")
    dist = (init_from_env(dev.type) if launched() else current()) if split else None
    mine = chosen[dist.rank::dist.world] if dist is not None else chosen   # torchrun: videos dealt over ranks
    if not force:   # every rank checks every target before any writes one, so that all refuse alike
        taken = [str(targets[i]) for i in chosen if targets[i].is_file()]
        if dist is not None:
            dist.barrier()
        if taken:
            raise OutputError(f"{taken[0]} exists{f' (and {len(taken) - 1} more)' if len(taken) > 1 else ''}; "
                              f"use --force (-y) to replace it")
    created = folder is not None and not folder.exists()
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    written = 0
    try:
        for i in mine:
            v = videos[i]
            info = v.with_frames(((rng[1] - rng[0]) if rng else v.num_frames) * fps_scale)
            info = dataclasses.replace(info, fps=Fraction(info.fps) * fps_scale)
            with open_writer(targets[i], info, fmt) as writer:  # atomic: a failure leaves no partial file
                for part in _windows(rng or (0, v.num_frames), layout, v, i, batch):
                    items = layout.items(videos, frames=part, video=i)
                    phases = [synthesize(model, layout, videos, items, dev, batch=batch, keyframes=kf,
                                         keyframe_planes=kf_planes, frame_range=part, phase=k / fps_scale)
                              for k in range(fps_scale)]
                    for rendered in zip(*phases):
                        f = rendered[0][1]
                        for _, _, planes in (rendered if f < v.num_frames - 1 else rendered[:1] * fps_scale):
                            writer.write(Frames(tuple(p[None] for p in planes), v.pix_fmt))
                            written += 1
    except BaseException as exc:
        if created:
            try:
                folder.rmdir()  # only if still empty: completed videos of a collection stay
            except OSError:
                pass
        if isinstance(exc, KeyboardInterrupt):
            raise InterruptedError_("interrupted while decoding; no partial output was left") from None
        raise
    if dist is not None:
        written = sum(dist.all_gather(written))
    return DecodeResult(tuple(str(targets[i]) for i in chosen), written, time.monotonic() - t0, str(dev))
