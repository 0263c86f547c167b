"""`nervcodec` command line: encode, decode, info, demo (and bench).

Library errors (:class:`NervCodecError`) become one line on stderr and the
error's exit code; Ctrl-C exits with 130; any other exception is a bug and is
reported in one line too (set NERVCODEC_DEBUG=1 for the traceback).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import click

from .. import __version__
from ..alloc import keep_freed_memory
from ..distributed import launched, leave
from ..errors import NervCodecError, NervCodecWarning
from ..textutil import plural
from ..model import model_names
from ..codec.effort import DEFAULT_EFFORT, EFFORT_PRESETS, RATE_PRESETS, RATE_TERMS
from .bench import bench
from .common import COLLECTIVE, fail, speaks, threads_option, verbose_option

DEBUG_ENV = "NERVCODEC_DEBUG"


class _Group(click.Group):
    """Turns every failure into one line and an exit code."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None, complete_var=None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """click's own usage errors ("Error: Missing argument ...") in nervcodec's one-line form too."""
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            fail("interrupted", 130)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
        if isinstance(rv, int) and rv and standalone_mode:   # click's Exit(code), e.g. from --help: 0
            sys.exit(rv)
        return rv

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():  # the command's warning settings end with the command
                rv = super().invoke(ctx)
            if launched():
                _exit_launched()
            return rv
        except BrokenPipeError:
            _reader_went_away()
        except NervCodecError as exc:
            # errors every rank of a torchrun job meets alike are said once (rank 0); others by the rank that met them
            fail(str(exc), exc.exit_code, everywhere=not isinstance(exc, COLLECTIVE))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError:
            fail("out of memory (try a shorter or smaller input, a smaller model, or --batch 1)", 1, everywhere=True)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # a bug: still one line unless debugging
            if os.environ.get(DEBUG_ENV):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for details)", 70, everywhere=True)


def _exit_launched() -> None:
    """A command that succeeded under torchrun: leave the process group, flush, and exit at once.  The
    interpreter's own teardown of torch's threads now and then aborted such a process after its work was
    done and its output written ("terminate called without an active exception", SIGABRT: 1 in 12
    two-process encodes on this project's CPU, still 1 in 20 after leaving the group first), which
    torchrun then reports as the job's failure."""
    leave()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _reader_went_away() -> None:
    """stdout's reader closed the pipe (``nervcodec info f.nerv | head -1``): a normal way to stop
    reading, so exit quietly with 0, as other command-line tools do.  stdout is pointed at
    /dev/null first, so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass
    sys.exit(0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, like errors (no source line, no file name)."""
    if speaks():
        click.echo(f"nervcodec: warning: {message}", err=True)


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def _clip_len(ctx: click.Context, param: click.Parameter, value: str) -> Optional[int]:
    """--clip-len: a whole number of frames, or auto (None: the planner chooses)."""
    if value is None or value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a whole number of frames nor auto", ctx=ctx,
                                 param=param) from None

@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nervcodec")
@click.option("-v", "--verbose", is_flag=True, help="Log external commands (ffmpeg) and details.")
def cli(verbose: bool) -> None:
    """nervcodec: a neural video codec (D-NeRV, NeRV) that writes real, self-describing files."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(name)s: %(message)s")
    keep_freed_memory()     # a fit's large temporaries reuse freed memory instead of faulting in new pages
    if not verbose:
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("default", message=".*may not decode.*")
    warnings.filterwarnings("default", category=NervCodecWarning)  # ours are always worth reading
    warnings.showwarning = _show_warning


def _device_option(f):
    return click.option("--device", default="auto", show_default=True,
                        help="auto (cuda when present, else cpu), cpu, cuda or cuda:N.")(f)


@cli.command()
@verbose_option
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--inputs-from", type=click.Path(), default=None, metavar="LIST",
              help="Read the input videos from LIST (one path per line, # comments; relative paths are relative "
                   "to LIST) or from every video in the folder LIST; then give only OUTPUT.")
@click.option("--model", type=click.Choice(model_names()), default="dnerv", show_default=True)
@click.option("--params", type=int, default=None, help="Parameter budget of the network.")
@click.option("--bpp", type=float, default=None,
              help="Target rate in bits per pixel (the whole file) [0.25 = --rate-preset medium when no size is given].")
@click.option("--rate-preset", type=click.Choice(list(RATE_PRESETS)), default=None,
              help="A named rate: tiny / small / medium / large / xlarge = 0.05 / 0.1 / 0.25 / 0.5 / 1.0 bpp.")
@click.option("--preset", default=DEFAULT_EFFORT, show_default=True, metavar="EFFORT",
              help=f"Encoder effort, as in x264: {' / '.join(EFFORT_PRESETS)} = "
                   f"{' / '.join(str(v) for v in EFFORT_PRESETS.values())} optimizer steps. "
                   "The rate is set apart (--bpp, --rate-preset, --params).")
@click.option("--epochs", type=int, default=None, help="Fit this many epochs instead of the preset's steps.")
@click.option("--steps", type=int, default=None, help="Fit this many optimizer steps instead of the preset's.")
@click.option("--rate-term", type=click.Choice(list(RATE_TERMS)), default="whole", show_default=True,
              help="How each step of the rate-aware fit estimates the rate of the latent grids' per-frame maps: "
                   "from every frame, or (experimental) from the frames the step draws: 1.2-1.7x faster "
                   "encodes on the QCIF dev clips, 3x cheaper rate-aware steps on bikes; no preset's yet.")
@click.option("--batch", type=int, default=0, help="Frames (NeRV) or clips (D-NeRV) per step [model default].")
@click.option("--lr", type=float, default=0.0, help="Peak learning rate [model default].")
@_device_option
@threads_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--loss", type=click.Choice(["l2", "fusion"]), default="l2", show_default=True,
              help="l2, or fusion = 0.7 L1 + 0.3 (1 - SSIM) as the reference code.")
@click.option("--quant-bits", type=int, default=None,
              help="Quantize after fitting at this precision (2..16 bits) instead of the rate-aware fit "
                   "with learned steps [rate-aware].")
@click.option("--lambda", "lam", type=float, default=None, metavar="L",
              help="Fixed rate-distortion weight of the rate-aware fit (loss = MSE + L x bpp) "
                   "[chosen to land on --bpp].")
@click.option("--clip-len", default="auto", show_default=True, metavar="D|auto", callback=_clip_len,
              help="Keyframe interval of D-NeRV and latent-grid-kf (frames per clip). auto: with a rate, the "
                   "keyframes are coded every 8, 4 and 2 frames and a shorter length is kept when its cross-fade scores "
                   "enough above the best longer one's (1.3 dB with --epochs; under a preset or --steps more as "
                   "the longer clip's fit makes more passes); otherwise 8.")
@click.option("--scenecut/--no-scenecut", default=True, show_default=True,
              help="D-NeRV and latent-grid-kf: find scene cuts and start a new run of clips (and keyframes) at "
                   "each, so no clip blends two scenes (as x264's --scenecut; off with --holdout or --mask).")
@click.option("--gop", type=int, default=None, metavar="N",
              help="Frames per group of the latent-grid model (its unit of random access) [16].")
@click.option("--keyframe-codec", default=None, help="Keyframe codec (D-NeRV) [default: measured best].")
@click.option("--keyframe-quality", type=int, default=None, help="Keyframe quality [chosen by the rate planner].")
@click.option("--keyframe-share", type=float, default=None,
              help="Share of the --bpp budget spent on keyframes, 0..1 [0.6 for dnerv, 0.8 for latent-grid-kf]; "
                   "the planner picks the quality to fit.")
@click.option("--keyframe-weights", type=click.Path(dir_okay=False), default=None,
              help="Weights file for a learned keyframe codec (compressai zoo checkpoint).")
@click.option("--fps", default=None, metavar="RATE",
              help="Frame rate of PNG-sequence (a folder or frames/%05d.png) and raw .yuv inputs, e.g. 25 or "
                   "30000/1001 [25].")
@click.option("--size", default=None, metavar="WxH", help="Frame size of raw .yuv inputs (with --pix-fmt).")
@click.option("--pix-fmt", default=None, metavar="FMT",
              help="Pixel format of raw .yuv inputs: yuv420p, yuv422p, yuv444p, their 10/12-bit 'le' forms, gray.")
@click.option("--force", "-y", is_flag=True, help="Replace OUTPUT if it exists (only after a successful encode).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Keep frames, keyframes and training items in files under DIR instead of memory (large "
                   "collections; removed afterwards).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Save the fitting state to this file every minute and on Ctrl-C (removed after success).")
@click.option("--resume", is_flag=True, help="Continue the fit saved in --checkpoint (starts afresh if absent).")
@click.option("--holdout", default=None, metavar="SPLIT",
              help="Keep frames out of the fit (temporal interpolation): every:N keeps frames 0, N, 2N, ...; "
                   "A_B_C fits positions < A of each C frames and scores positions >= B as unseen (1_1_2).")
@click.option("--mask", default=None, metavar="MASK",
              help="Keep holes out of the fit (inpainting): disperse[:S], central, a PNG (white = hole) or a "
                   "folder of per-frame PNGs.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None, metavar="CLEAN",
              help="With --verify: score against this clean clip (denoising) instead of the input.")
@click.option("--figure", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="With --verify: write the reference, the input and the decoded frame side by side "
                   "(zoomed crop, error map) to this PNG.")
@click.option("--verify", is_flag=True, help="Decode the written file and report its measured quality.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or status lines (the result is still printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def encode(paths: Sequence[str], as_json: bool, quiet: bool, verify: bool, inputs_from: Optional[str],
           **opts: Any) -> None:
    """Encode INPUT... into OUTPUT (.nerv).  Several inputs make one collection file.

    Under torchrun (``torchrun --nproc-per-node N -m nervcodec encode ...``) the fit is
    data-parallel over the processes; --batch is then the global batch."""
    from ..codec import EncodeConfig
    from ..codec import encode as do_encode
    if inputs_from is not None:
        from ..io.lists import read_input_list
        if len(paths) != 1:
            raise click.UsageError("with --inputs-from give only the OUTPUT file")
        inputs, output = read_input_list(inputs_from), paths[0]
    elif len(paths) < 2:
        raise click.UsageError("give at least one INPUT and the OUTPUT file")
    else:
        *inputs, output = paths
    cfg = EncodeConfig(model=opts["model"], params=opts["params"], bpp=opts["bpp"], rate_preset=opts["rate_preset"],
                       preset=opts["preset"], epochs=opts["epochs"], steps=opts["steps"], rate_term=opts["rate_term"], batch=opts["batch"], lr=opts["lr"], device=opts["device"],
                       seed=opts["seed"], loss=opts["loss"], quant_bits=opts["quant_bits"], lam=opts["lam"],
                       clip_len=opts["clip_len"], scenecut=opts["scenecut"], gop=opts["gop"],
                       keyframe_codec=opts["keyframe_codec"], keyframe_quality=opts["keyframe_quality"],
                       keyframe_share=opts["keyframe_share"],
                       keyframe_weights=opts["keyframe_weights"], fps=opts["fps"], size=opts["size"],
                       pix_fmt=opts["pix_fmt"], verify=verify, force=opts["force"],
                       checkpoint=opts["checkpoint"], resume=opts["resume"], holdout=opts["holdout"],
                       mask=opts["mask"], reference=opts["reference"], figure=opts["figure"],
                       cache_dir=opts["cache_dir"])
    res = do_encode(inputs, output, cfg, progress=not quiet and not as_json)
    if not speaks():
        return
    if as_json:
        _emit_json(res.to_dict())
    else:   # -q hides the progress, not the result
        click.echo(f"{res.path}: {res.bytes} bytes, {res.bpp:.4f} bpp, PSNR-YUV {res.psnr:.2f} dB "
                   f"(Y {res.psnr_y:.2f}), {res.params} parameters at {res.bits_per_param:.2f} bits, "
                   f"{res.frames} frames, {res.seconds:.1f} s")
        if res.keyframes_recoded:
            click.echo(f"keyframes coded again after the fit, at quality {res.keyframe_quality} ({res.keyframe_bytes} "
                       f"bytes), with the budget the network left unspent")
        if res.verify is not None:
            v = res.verify
            against = f" against {v.reference}" if v.reference else ""
            click.echo(f"verified: decoded from disk, PSNR-RGB {v.psnr_rgb:.2f} dB, PSNR-YUV {v.psnr_yuv:.2f} dB"
                       f"{against}")
            if v.tasks is not None:
                click.echo(_task_line(v.tasks))


def _task_line(t: Any) -> str:
    """The task scores of --verify in one line (PSNR-RGB)."""
    parts = []
    if t.psnr_rgb_unseen is not None:
        parts.append(f"seen {t.psnr_rgb_seen:.2f} dB ({t.frames_seen} frames), unseen {t.psnr_rgb_unseen:.2f} dB "
                     f"({t.frames_unseen}; neighbour average {t.psnr_rgb_unseen_neighbours:.2f} dB)")
    if t.psnr_rgb_holes is not None:
        parts.append(f"holes {t.psnr_rgb_holes:.2f} dB, outside {t.psnr_rgb_visible:.2f} dB")
    if t.psnr_rgb_input is not None:
        parts.append(f"the input itself {t.psnr_rgb_input:.2f} dB")
    return "tasks (PSNR-RGB): " + "; ".join(parts) if parts else f"tasks (PSNR-RGB): {t.psnr_rgb:.2f} dB"


@cli.command()
@verbose_option
@click.argument("file", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A .y4m or .mkv file; a PNG pattern such as frames/%05d.png for PNGs; or a folder (ending in "
                   "/ or existing) for one .y4m per video, which a collection needs.")
@click.option("--frames", default=None, help="Only frames A:B (B exclusive) or N.")
@click.option("--video", default=None, help="Only this video of a collection (name or index).")
@_device_option
@threads_option
@click.option("--batch", type=int, default=8, show_default=True, help="Clips per synthesis batch.")
@click.option("--force", "-y", is_flag=True, help="Replace output files that exist (only once the new one is complete).")
@click.option("--fps-scale", type=int, default=1, show_default=True, metavar="K",
              help="Frame-rate up-conversion: K frames per source frame, rendered between the fitted ones.")
@click.option("--keyframe-weights", type=click.Path(dir_okay=False), default=None)
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def decode(file: str, output: str, frames: Optional[str], video: Optional[str], device: str, batch: int,
           force: bool, fps_scale: int, keyframe_weights: Optional[str], quiet: bool, as_json: bool) -> None:
    """Decode FILE.nerv to video (the source's pixel format and frame rate, times --fps-scale)."""
    from ..codec import decode as do_decode
    res = do_decode(file, output, frames=frames, video=video, device=device, batch=batch,
                    keyframe_weights=keyframe_weights, progress=not quiet, fps_scale=fps_scale, force=force)
    if as_json:
        _emit_json(res.to_dict())
    else:   # -q hides the progress, not the result
        click.echo(f"decoded {plural(res.frames, 'frame')} to {', '.join(res.outputs)} in {res.seconds:.2f} s "
                   f"({res.frames / max(res.seconds, 1e-9):.1f} fps on {res.device})")


@cli.command()
@verbose_option
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True)
def info(file: str, as_json: bool) -> None:
    """Show what FILE.nerv holds and its rate."""
    from ..codec import inspect
    fi = inspect(file)
    if as_json:
        _emit_json(fi.to_dict())
        return
    click.echo(f"{fi.path}: nervcodec file format {fi.version}, {fi.bytes} bytes, {fi.bpp:.4f} bpp")
    for v in fi.videos:
        num, _, den = str(v["fps"]).partition("/")
        rate = float(num) / float(den or 1)
        click.echo(f"  video {v['name']!r}: {v['width']}x{v['height']} {v['pix_fmt']} {rate:.6g} fps ({v['fps']}), "
                   f"{plural(int(v['frames']), 'frame')}")
    quant = "steps learned by the rate-aware fit" if fi.quant_bits == 0 else f"{fi.quant_bits}-bit quantization"
    size = f"{fi.params} parameters at {fi.bits_per_param:.2f} bits, " if fi.params else ""
    click.echo(f"  model: {fi.model}, {size}{quant}")
    click.echo(f"  layout: {json.dumps(fi.layout, sort_keys=True)}")
    click.echo(f"  config: {json.dumps(fi.model_config, sort_keys=True)}")
    click.echo(f"  sections: header+framing {fi.header_bytes} B, weights {fi.weights_bytes} B, "
               f"keyframes {fi.keyframe_bytes} B" + (f" ({fi.keyframe_codec}, quality {fi.keyframe_quality})"
                                                     if fi.keyframe_codec else ""))
    if fi.encoder:
        click.echo(f"  written by {fi.encoder}")


@cli.command()
@verbose_option
@click.option("--model", type=click.Choice(model_names()), default="dnerv", show_default=True)
@click.option("--epochs", type=int, default=100, show_default=True)
@click.option("--bpp", type=float, default=0.5, show_default=True)
@_device_option
@threads_option
@click.option("--keep", type=click.Path(file_okay=False), default=None, help="Keep the .nerv and decoded y4m here.")
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def demo(model: str, epochs: int, bpp: float, device: str, keep: Optional[str], quiet: bool, as_json: bool) -> None:
    """Encode and decode the embedded sample clip; print size, bpp, PSNR and time."""
    from ..codec import EncodeConfig
    from ..codec import decode as do_decode
    from ..codec import encode as do_encode
    from ..codec.quality import FrameScores
    from ..data import sample_path
    from ..io import read_video
    sample = sample_path()
    with tempfile.TemporaryDirectory(prefix="nervcodec-demo-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        nerv, out = folder / "sample.nerv", folder / "sample_decoded.y4m"
        res = do_encode([sample], nerv, EncodeConfig(model=model, bpp=bpp, epochs=epochs, device=device, force=True),
                        progress=not quiet and not as_json)
        t0 = time.monotonic()
        dres = do_decode(nerv, out, device=device, force=True)
        dec_s = time.monotonic() - t0
        _, src = read_video(sample)
        _, dec = read_video(out)
        scores = FrameScores(src.pix_fmt)
        for i in range(src.num_frames):
            scores.add([p[i] for p in src.planes], [p[i] for p in dec.planes])
    summary = {"sample": str(sample), "model": model, "bytes": res.bytes, "bpp": res.bpp, "frames": res.frames,
               "psnr_yuv": scores.psnr_yuv, "psnr_y": scores.psnr_y, "encode_seconds": res.seconds,
               "decode_seconds": dec_s, "decode_fps": dres.frames / max(dec_s, 1e-9), "params": res.params}
    if as_json:
        _emit_json(summary)
        return
    click.echo(f"demo: {res.frames} frames of the embedded sample ({model}, {res.params} parameters)")
    click.echo(f"  file    {res.bytes} bytes = {res.bpp:.4f} bpp (size on disk)")
    click.echo(f"  quality PSNR-YUV {scores.psnr_yuv:.2f} dB, PSNR-Y {scores.psnr_y:.2f} dB (decoded file vs source)")
    click.echo(f"  time    encode {res.seconds:.1f} s, decode {dec_s:.2f} s on {dres.device}")


@cli.command()
@verbose_option
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--noise", "spec", required=True, metavar="TYPE:AMOUNT",
              help="saltpepper:P, white:P, black:P (density of corrupted luma samples), gaussian:SIGMA "
                   "(8-bit code values) or patches:N (random squares per frame).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", "-y", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def noise(source: str, output: str, spec: str, seed: int, force: bool, as_json: bool) -> None:
    """Write a reproducibly corrupted copy of SOURCE to OUTPUT (for denoising experiments)."""
    from ..tasks.corrupt import corrupt_file
    report = corrupt_file(source, output, spec, seed, force=force)
    if as_json:
        _emit_json(report)
        return
    click.echo(f"{output}: {report['description']} (seed {seed}); {report['corrupted_luma_samples']} of "
               f"{report['luma_samples']} luma samples corrupted, PSNR-RGB {report['psnr_rgb']:.2f} dB against "
               f"{source}")


cli.add_command(bench)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: temporary files removed, existing outputs kept


def main(argv: Optional[Sequence[str]] = None) -> None:
    import signal
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    cli.main(args=list(argv) if argv is not None else None, prog_name="nervcodec")
