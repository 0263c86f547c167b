"""The benchmark runner: encode every clip with every codec, decode, measure, compare.

Every codec is measured the same way: its output file's size gives the bpp,
its output is decoded to a y4m file in the source's pixel format (that decode
is what ``decode_seconds`` times), and :func:`nervcodec.metrics.compare_videos`
compares that y4m with the source.

Rate points
-----------
* **nervcodec** aims at each ``bpp_targets`` value.  The default ladder follows
  the clip's size (:func:`default_bpp_targets`): four targets doubling from a
  lowest rate that still buys a usable model, because an INR's parameters are
  spent on the whole clip and a short or small clip needs more bits per pixel
  for the same model.
* **Baselines** use the given CRFs, or else a sweep over the grid
  :data:`CRF_GRID` (12..47 in steps of 5, then 51) that starts at CRF 32 and
  walks to lower and higher CRFs until the measured bpp brackets the nervcodec
  targets and the rates nervcodec reached (nervcodec runs first).  Points inside the targets' span are kept, plus the nearest one
  beyond each end, so BD-rate has a baseline curve over the whole nervcodec
  range without encodes far outside it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ConfigError, InputError
from ..io.video import VideoInfo
from ..metrics.bd import BD_METHODS, BDResult, bd_delta, ms_ssim_to_db
from ..metrics.msssim import ms_ssim_method
from ..metrics.quality import QualityReport, compare_videos
from ..metrics.rate import bits_per_pixel
from ..metrics.vmaf import vmaf_score
from ..model import model_names
from ..tools.ffmpeg import run_ffmpeg
from .baselines import (BASELINES, ENCODER_PIX_FMTS, BaselineSettings, decode_args, describe, encode_args,
                        output_name)
from .results import NERV_CODEC, BenchResult, ClipResult, Point, pool_points

__all__ = ["BenchConfig", "CRF_GRID", "CRF_START", "BD_METRICS", "default_bpp_targets", "select_sweep",
           "run_bench", "bench_clip", "compute_bd"]


#: CRFs the default sweep may use, and where it starts.
CRF_GRID: Tuple[int, ...] = (12, 17, 22, 27, 32, 37, 42, 47, 51)
CRF_START = 32

#: Bits the lowest default target must buy: about 20k 8-bit parameters, below which a NeRV-style
#: model cannot represent a clip usefully.
MIN_MODEL_BITS = 160_000
#: Bounds of the lowest default target (bpp) and the ladder's shape.
LOWEST_TARGET_RANGE = (0.02, 0.2)
TARGET_STEPS = 4
TARGET_RATIO = 2.0

#: Quality metrics BD figures are computed on; the first is the headline.
BD_METRICS: Tuple[str, ...] = ("psnr_rgb", "psnr_yuv", "ms_ssim")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """What to run.  Empty ``crfs`` / ``bpp_targets`` mean the defaults described in the module docstring."""

    baselines: Tuple[str, ...] = ("h264", "hevc")
    crfs: Tuple[int, ...] = ()
    preset: str = "medium"
    bframes: int = 0
    container: str = "raw"
    sei: bool = False            # keep the baselines' settings SEI (with container mp4: the papers' files)
    bpp_targets: Tuple[float, ...] = ()
    nerv: bool = True
    model: str = "dnerv"
    epochs: Optional[int] = None
    nerv_preset: Optional[str] = None  # nervcodec's effort; None = ``preset`` (the same name for every codec)
    device: str = "auto"
    seed: int = 0
    vmaf: bool = False
    bd_method: str = "akima"
    keep_decoded: bool = False
    figures: bool = False        # write a side-by-side PNG per clip at matched rates (needs an output folder)
    reference: Optional[str] = None  # measure every codec against this clean clip (denoising), one input only
    holdout: Optional[str] = None    # nervcodec fits only these frames (interpolation); scored seen / unseen
    mask: Optional[str] = None       # nervcodec never sees these holes (inpainting); scored inside / outside
    bars: bool = False               # show each nervcodec fit's progress bar (PSNR, ETA) on stderr

    def __post_init__(self) -> None:
        for b in self.baselines:
            if b not in BASELINES:
                raise ConfigError(f"unknown baseline {b!r} (known: {', '.join(BASELINES)})")
        if not self.baselines and not self.nerv:
            raise ConfigError("nothing to run: no baseline and --no-nerv")
        for t in self.bpp_targets:
            if not 0 < t < 64:
                raise ConfigError(f"--bpp must be in (0, 64), got {t}")
        if self.model not in model_names():
            raise ConfigError(f"--model must be one of {', '.join(model_names())}, got {self.model!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.nerv and self.epochs is None:
            self.nerv_effort  # validates it
        if self.bd_method not in BD_METHODS:
            raise ConfigError(f"unknown BD interpolation {self.bd_method!r} (known: {', '.join(BD_METHODS)})")
        self.baseline_settings  # validates preset, bframes and container
        if self.holdout is not None:
            from ..tasks import parse_holdout
            parse_holdout(self.holdout)
        if self.mask is not None:
            from ..tasks import parse_mask
            parse_mask(self.mask)

    @property
    def nerv_effort(self) -> str:
        """nervcodec's effort preset: --nerv-preset, else the baselines' --preset when nervcodec has it."""
        from ..codec.effort import EFFORT_PRESETS, check_effort
        if self.nerv_preset is not None:
            return check_effort(self.nerv_preset)
        if self.preset not in EFFORT_PRESETS:
            raise ConfigError(f"nervcodec has no effort preset {self.preset!r} ({', '.join(EFFORT_PRESETS)}): "
                              f"give --nerv-preset, --epochs or --no-nerv")
        return self.preset

    @property
    def baseline_settings(self) -> BaselineSettings:
        return BaselineSettings(preset=self.preset, bframes=self.bframes, container=self.container, sei=self.sei)

    def describe(self) -> dict:
        """The settings as they go into results.json: the exact baseline commands included."""
        s = self.baseline_settings
        return {
            "baselines": {b: {"encoder": BASELINES[b].encoder,
                              "settings": describe(b, dataclasses.replace(s, pix_fmt="SOURCE")), "preset": s.preset,
                              "bframes": s.bframes, "pix_fmt": "the source's", "container": s.container,
                              "settings_sei": s.sei}
                          for b in self.baselines},
            "crfs": list(self.crfs) or f"default sweep over {list(CRF_GRID)} from {CRF_START}, bracketing the targets",
            "nervcodec": ({"model": self.model, "epochs": self.epochs,
                           "effort": f"--epochs {self.epochs}" if self.epochs is not None else
                           f"preset {self.nerv_effort}", "device": self.device, "seed": self.seed,
                           "bpp_targets": list(self.bpp_targets) or "default ladder from the clip's size"}
                          if self.nerv else None),
            "vmaf": self.vmaf, "bd_method": self.bd_method, "bd_metrics": list(BD_METRICS),
            "reference": self.reference or "each input itself", "holdout": self.holdout, "mask": self.mask,
            "pooling": "frame-weighted means over clips; bytes and seconds summed",
        }


def _round_sig(x: float, digits: int = 2) -> float:
    if x <= 0:
        return x
    return round(x, -int(math.floor(math.log10(x))) + digits - 1)


def default_bpp_targets(width: int, height: int, frames: int) -> List[float]:
    """Default nervcodec targets for a clip: four rates doubling from ``MIN_MODEL_BITS / pixels``.

    The lowest target is clamped to [0.02, 0.2] bpp: 0.02 is where the NeRV
    literature's curves start at 1080p, and 0.2 keeps tiny clips (where the
    model dominates) from asking for near-lossless rates.  QCIF x 48 frames
    gives 0.13, 0.26, 0.52, 1.04; a 600-frame 1080p clip gives 0.02, 0.04, 0.08, 0.16.
    """
    pixels = width * height * frames
    lo, hi = LOWEST_TARGET_RANGE
    lowest = _round_sig(min(hi, max(lo, MIN_MODEL_BITS / max(1, pixels))))
    return [_round_sig(lowest * TARGET_RATIO ** i, 3) for i in range(TARGET_STEPS)]


def select_sweep(measured: Dict[int, float], lo: float, hi: float) -> List[int]:
    """CRFs to keep from a sweep: those whose bpp is inside [lo, hi] and the nearest one beyond each end."""
    inside = [c for c, b in measured.items() if lo <= b <= hi]
    above = [c for c, b in measured.items() if b > hi]
    below = [c for c, b in measured.items() if b < lo]
    keep = set(inside)
    if above:
        keep.add(min(above, key=lambda c: measured[c]))
    if below:
        keep.add(max(below, key=lambda c: measured[c]))
    return sorted(keep)


def _unique_name(name: str, taken: set) -> str:
    base, n = name or "clip", 2
    while name in taken or not name:
        name = f"{base}_{n}"
        n += 1
    taken.add(name)
    return name


class _ClipRun:
    """State of one clip's run: paths, source info and the measuring of decoded outputs."""

    def __init__(self, source: str, name: str, info: VideoInfo, workdir: str, out_dir: Optional[str],
                 config: BenchConfig, progress: Progress):
        self.source, self.name, self.info, self.config, self.progress = source, name, info, config, progress
        self.dir = os.path.join(workdir, name)
        self.out_dir = out_dir
        self.decoded_dir = os.path.join(self.dir, "decoded")
        os.makedirs(self.decoded_dir, exist_ok=True)
        self.method = ms_ssim_method(info.width, info.height)

    @property
    def baseline_settings(self) -> BaselineSettings:
        """The run's baseline settings in the source's own pixel format (bit depth and chroma kept)."""
        return dataclasses.replace(self.config.baseline_settings, pix_fmt=self.info.pix_fmt.name)

    def decoded_path(self, codec: str, crf: Optional[int] = None, target: Optional[float] = None) -> str:
        """Where a point's decoded y4m goes (kept for --figures until the clip is done)."""
        name = f"nervcodec_bpp{target:g}" if codec == NERV_CODEC else f"{codec}_crf{crf}"
        return os.path.join(self.decoded_dir, f"{name}.y4m")

    def rel(self, path: str) -> Optional[str]:
        return os.path.relpath(path, self.out_dir) if self.out_dir else None

    @property
    def reference(self) -> str:
        """What every output is measured against: the input, or the clean --reference."""
        return self.config.reference or self.source

    def measure(self, decoded: str) -> Tuple[QualityReport, Optional[float]]:
        report = compare_videos(self.reference, decoded)
        vmaf = vmaf_score(decoded, self.reference).mean if self.config.vmaf else None
        if not (self.config.keep_decoded or self.config.figures):
            os.remove(decoded)
        return report, vmaf

    def point(self, codec: str, encoded: str, report: QualityReport, vmaf: Optional[float], enc_s: float,
              dec_s: float, **extra) -> Point:
        size = os.path.getsize(encoded)
        i = self.info
        return Point(codec=codec, clip=self.name, bpp=bits_per_pixel(size, i.num_frames, i.width, i.height),
                     bytes=size, frames=i.num_frames, width=i.width, height=i.height, psnr_rgb=report.psnr_rgb,
                     psnr_y=report.psnr_y, psnr_u=report.psnr_u, psnr_v=report.psnr_v, psnr_yuv=report.psnr_yuv,
                     ms_ssim=report.ms_ssim, vmaf=vmaf, encode_seconds=enc_s, decode_seconds=dec_s,
                     file=self.rel(encoded), ms_ssim_method=self.method.label, **extra)

    def say(self, p: Point, what: str) -> None:
        self.progress(f"[{self.name}] {what}: {p.bpp:.4f} bpp, PSNR-RGB {p.psnr_rgb:.2f} dB "
                      f"(encode {p.encode_seconds:.1f} s, decode {p.decode_seconds:.1f} s)")

    # ------------------------------------------------------------------ baselines

    def baseline_point(self, codec: str, crf: int) -> Point:
        settings = self.baseline_settings
        encoded = os.path.join(self.dir, output_name(codec, crf, settings))
        decoded = self.decoded_path(codec, crf=crf)
        t0 = time.perf_counter()
        run_ffmpeg(encode_args(codec, self.source, encoded, crf, settings),
                   what=f"encoding {self.name} with {BASELINES[codec].encoder} at CRF {crf}")
        t1 = time.perf_counter()
        run_ffmpeg(decode_args(encoded, decoded, self.info.pix_fmt.name), what=f"decoding {encoded}")
        t2 = time.perf_counter()
        report, vmaf = self.measure(decoded)
        p = self.point(codec, encoded, report, vmaf, t1 - t0, t2 - t1, crf=crf, target_bpp=None,
                       preset=settings.preset, bframes=settings.bframes)
        self.say(p, f"{codec} crf {crf}")
        return p

    def baseline_sweep(self, codec: str, targets: Sequence[float]) -> List[Point]:
        if self.config.crfs:
            return [self.baseline_point(codec, c) for c in sorted(set(self.config.crfs))]
        lo, hi = min(targets), max(targets)
        points: Dict[int, Point] = {}

        def at(index: int) -> float:
            crf = CRF_GRID[index]
            if crf not in points:
                points[crf] = self.baseline_point(codec, crf)
            return points[crf].bpp

        start = CRF_GRID.index(CRF_START)
        i = start
        while at(i) < hi and i > 0:          # lower CRF = more bits
            i -= 1
        i = start
        while at(i) > lo and i < len(CRF_GRID) - 1:
            i += 1
        keep = select_sweep({c: p.bpp for c, p in points.items()}, lo, hi)
        for crf in points:
            if crf not in keep:
                self._discard(codec, crf)
        return [points[c] for c in keep]

    def _discard(self, codec: str, crf: int) -> None:
        path = os.path.join(self.dir, output_name(codec, crf, self.baseline_settings))
        try:
            os.remove(path)
        except OSError:
            pass

    # ------------------------------------------------------------------ nervcodec

    def nerv_point(self, target: float, number: int = 1, count: int = 1) -> Point:
        from ..codec import EncodeConfig, decode, encode
        cfg = self.config
        kwargs = {"model": cfg.model, "bpp": target, "seed": cfg.seed, "device": cfg.device, "force": True,
                  "holdout": cfg.holdout, "mask": cfg.mask}
        if cfg.epochs is not None:
            kwargs["epochs"] = cfg.epochs
        else:
            kwargs["preset"] = cfg.nerv_effort
        encoded = os.path.join(self.dir, f"nervcodec_{cfg.model}_bpp{target:g}.nerv")
        decoded = self.decoded_path(NERV_CODEC, target=target)
        for stale in (encoded, decoded):
            if os.path.exists(stale):
                os.remove(stale)
        self.progress(f"[{self.name}] nervcodec {cfg.model} at {target:g} bpp (point {number} of {count}): encoding")
        t0 = time.perf_counter()
        res = encode([self.source], encoded, EncodeConfig(**kwargs), progress=cfg.bars)
        t1 = time.perf_counter()
        decode(encoded, decoded, frames=None, device=cfg.device, progress=False, force=True)
        t2 = time.perf_counter()
        tasks = None
        if cfg.holdout or cfg.mask or cfg.reference:
            from ..codec.verification import task_scores
            tasks = task_scores(self.source, decoded, cfg.reference, cfg.holdout, cfg.mask).to_dict()
        report, vmaf = self.measure(decoded)
        p = self.point(NERV_CODEC, encoded, report, vmaf, t1 - t0, t2 - t1, crf=None, target_bpp=target,
                       model=cfg.model, epochs=res.epochs, preset=None if cfg.epochs else cfg.nerv_effort,
                       tasks=tasks, params=res.params, bits_per_param=res.bits_per_param,
                       fit_psnr_float=res.fit_psnr_float, fit_psnr_quantized=res.fit_psnr_quantized)
        self.say(p, f"nervcodec {cfg.model} target {target:g} bpp")
        return p


def task_baselines(source: str, config: BenchConfig) -> Dict[str, float]:
    """PSNR-RGB of the classic baselines of the tasks, measured like the codecs: with a reference,
    the input itself and its 3x3-median and Gaussian filtered versions; with a holdout, the
    average of the two nearest seen frames on the unseen ones."""
    from ..io import read_video
    from ..metrics.rgb import frames_to_rgb24
    from ..metrics.tasks import mean_psnr_rgb, neighbour_average
    from ..tasks import apply_filter, parse_holdout
    out: Dict[str, float] = {}
    if config.reference is None and config.holdout is None:
        return out
    _, src = read_video(source)
    ref = read_video(config.reference)[1] if config.reference is not None else src
    ref_rgb = frames_to_rgb24(ref)

    def score(frames, rgb=ref_rgb) -> float:
        return mean_psnr_rgb(rgb, frames_to_rgb24(frames))

    if config.reference is not None:
        out["input itself"] = score(src)
        out["3x3 median filter"] = score(apply_filter(src, "median3"))
        out["Gaussian filter (sigma 1)"] = score(apply_filter(src, "gaussian"))
    if config.holdout is not None:
        split = parse_holdout(config.holdout)
        seen, unseen = split.seen_frames(src.num_frames), split.unseen_frames(src.num_frames)
        out["neighbour average (unseen frames)"] = score(neighbour_average(src, seen, unseen),
                                                         ref_rgb[unseen])
    return out


def matched_figure(run: _ClipRun, points: Sequence[Point]) -> str:
    """The clip's middle frame from the source and from each codec at matched rates, side by side
    (:mod:`nervcodec.tasks.figures`): nervcodec's middle rate point, and each baseline's point
    nearest to it in bpp.  Written to ``out_dir/figures/CLIP.png``; returns the path."""
    from ..io import read_video
    from ..metrics.rgb import frame_rgb24
    from ..tasks.figures import middle_frame, write_figure
    nerv = sorted((p for p in points if p.codec == NERV_CODEC), key=lambda p: p.bpp)
    anchor = nerv[len(nerv) // 2].bpp if nerv else sorted(p.bpp for p in points)[len(points) // 2]
    chosen = []
    for codec in [*run.config.baselines, NERV_CODEC]:
        pts = [p for p in points if p.codec == codec]
        if pts:
            chosen.append(min(pts, key=lambda p: abs(p.bpp - anchor)))
    f = middle_frame(run.info.num_frames)
    images = [frame_rgb24(read_video(path)[1], f)
              for path in [run.reference] + [run.decoded_path(p.codec, p.crf, p.target_bpp) for p in chosen]]
    labels = [f"{'reference' if run.config.reference else 'source'}, frame {f}"]
    labels += [f"{p.codec}, {p.bpp:.3f} bpp" for p in chosen]
    folder = os.path.join(run.out_dir, "figures")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{run.name}.png")
    write_figure(path, images, labels)
    return path


def compute_bd(points: Iterable[Point], baselines: Sequence[str], method: str = "akima") -> Dict[str, Dict[str, BDResult]]:
    """BD figures of nervcodec against each baseline, for every metric in :data:`BD_METRICS`.

    MS-SSIM enters as -10·log10(1 - MS-SSIM) dB, the usual scale for it.
    """
    pts = list(points)
    test = [p for p in pts if p.codec == NERV_CODEC]
    out: Dict[str, Dict[str, BDResult]] = {}
    if not test:
        return out

    def curve(ps: List[Point], metric: str) -> Tuple[List[float], List[float]]:
        rates, quality = [], []
        for p in ps:
            v = getattr(p, metric)
            if v is None:
                continue
            rates.append(p.bpp)
            quality.append(ms_ssim_to_db(v) if metric == "ms_ssim" else v)
        return rates, quality

    for b in baselines:
        anchor = [p for p in pts if p.codec == b]
        if not anchor:
            continue
        out[b] = {}
        for metric in BD_METRICS:
            ar, aq = curve(anchor, metric)
            tr, tq = curve(test, metric)
            if not ar or not tr:
                continue
            out[b][metric] = bd_delta(ar, aq, tr, tq, method=method,
                                      quality_name="BD-PSNR" if metric.startswith("psnr") else "BD-MS-SSIM")
    return out


def bench_clip(source: str, name: str, workdir: str, config: BenchConfig, *, out_dir: Optional[str] = None,
               progress: Progress = lambda _msg: None) -> ClipResult:
    """Run every codec of ``config`` on one clip; encoded files go to ``workdir/name``."""
    from ..io import open_video

    with open_video(source) as reader:
        info = reader.info
    fmt = info.pix_fmt
    if config.baselines and ((fmt.log2_chroma_w and info.width % 2) or (fmt.log2_chroma_h and info.height % 2)):
        raise InputError(f"{source}: {info.width}x{info.height} has an odd side; the {fmt.name} baselines need "
                         f"even {'width and height' if fmt.log2_chroma_h else 'width'}")
    for b in config.baselines:
        encoder = BASELINES[b].encoder
        if fmt.name not in ENCODER_PIX_FMTS[encoder]:
            raise InputError(f"{source}: {encoder} cannot code {fmt.name} at its own bit depth and chroma format; "
                             f"a baseline converted to another format would not be a fair anchor"
                             + ("; use --baseline hevc" if encoder == "libx264" and "libx265" in
                                [BASELINES[x].encoder for x in BASELINES] and fmt.name in ENCODER_PIX_FMTS["libx265"]
                                else ""))
    run = _ClipRun(source, name, info, workdir, out_dir, config, progress)
    try:
        targets = list(config.bpp_targets) or default_bpp_targets(info.width, info.height, info.num_frames)
        uses_targets = config.nerv or not config.crfs
        progress(f"[{name}] {info.width}x{info.height} {info.pix_fmt.name}, {info.num_frames} frames"
                 + (f"; {'nervcodec targets' if config.nerv else 'CRF sweep spans'} "
                    f"{', '.join(f'{t:g}' for t in targets)} bpp" if uses_targets else ""))
        clip = ClipResult(name=name, path=source, width=info.width, height=info.height, frames=info.num_frames,
                          fps=str(Fraction(info.fps)), pix_fmt=info.pix_fmt.name,
                          bpp_targets=sorted(targets) if config.nerv else [], crfs={},
                          ms_ssim_note=run.method.note)
        if config.nerv:  # first, so the baseline sweep can span the rates nervcodec actually reached
            failure: Optional[ConfigError] = None
            for k, t in enumerate(sorted(targets), 1):
                try:
                    clip.points.append(run.nerv_point(t, k, len(targets)))
                except ConfigError as exc:
                    # One infeasible target (e.g. a rate too low for any model of this clip) should not
                    # throw away the rest of a long run; it is reported instead.  If no target works
                    # at all, the settings are wrong and that is an error.
                    failure = exc
                    clip.notes.append(f"nervcodec at {t:g} bpp skipped: {exc}")
                    progress(f"[{name}] nervcodec at {t:g} bpp skipped: {exc}")
            if failure is not None and not any(p.codec == NERV_CODEC for p in clip.points):
                raise ConfigError(f"{name}: no nervcodec target could be encoded ({failure})")
        span = targets + [p.bpp for p in clip.points if p.codec == NERV_CODEC]
        for codec in config.baselines:
            pts = run.baseline_sweep(codec, span)
            clip.points.extend(pts)
            clip.crfs[codec] = [p.crf for p in pts if p.crf is not None]
        clip.task_baselines = task_baselines(source, config)
        if config.figures and out_dir is not None:
            clip.figure = run.rel(matched_figure(run, clip.points))
    finally:   # also on Ctrl-C or an error: no decoded/ folder is left behind
        if not config.keep_decoded:
            shutil.rmtree(run.decoded_dir, ignore_errors=True)
    clip.bd = compute_bd(clip.points, config.baselines, config.bd_method)
    return clip


def run_bench(inputs: Sequence[str], config: BenchConfig, workdir: str, *, out_dir: Optional[str] = None,
              progress: Progress = lambda _msg: None) -> BenchResult:
    """Benchmark every input; return per-clip results and, for several clips, the pooled summary.

    ``workdir`` receives one folder of encoded files per clip; ``out_dir``
    (usually the same folder) is what point ``file`` paths are relative to, or
    None when the encoded files are temporary.
    """
    if not inputs:
        raise ConfigError("give at least one input video")
    if config.reference is not None:
        from ..codec.plan import check_reference
        from ..io import open_video
        if len(inputs) != 1:
            raise ConfigError("--reference is the clean version of a single input; give one input")
        with open_video(inputs[0]) as reader:
            check_reference(config.reference, [reader.info])
    os.makedirs(workdir, exist_ok=True)
    taken: set = set()
    clips: List[ClipResult] = []
    for src in inputs:
        name = _unique_name(os.path.splitext(os.path.basename(os.fspath(src)))[0], taken)
        clips.append(bench_clip(os.fspath(src), name, workdir, config, out_dir=out_dir, progress=progress))
    result = BenchResult(clips=clips, settings=config.describe())
    result.pooled_points = pool_points(clips)
    if result.pooled_points:
        result.pooled_bd = compute_bd(result.pooled_points, config.baselines, config.bd_method)
    if not config.nerv:
        result.notes.append("no nervcodec points (--no-nerv): no BD figures")
    for clip in clips:
        if clip.ms_ssim_note:
            result.notes.append(f"{clip.name}: {clip.ms_ssim_note}")
        result.notes.extend(f"{clip.name}: {note}" for note in clip.notes)
    return result
