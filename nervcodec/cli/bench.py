"""``nervcodec bench``: the command-line face of :mod:`nervcodec.bench`.

Only this layer talks to the terminal: progress goes to stderr, the table to
stdout, and with ``--json`` stdout carries nothing but the JSON (the table
moves to stderr) so the output can be piped into other tools.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from typing import Optional, Tuple

import click

from ..bench.baselines import BASELINES, CONTAINERS, X264_PRESETS
from ..bench.report import format_table, prepare_out_dir, to_json, write_outputs
from ..bench.runner import BenchConfig, run_bench
from ..errors import ConfigError, NervCodecError
from ..model import model_names
from .common import COLLECTIVE, fail, threads_option, verbose_option

__all__ = ["bench"]


@click.command("bench")
@verbose_option
@threads_option
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--baseline", type=click.Choice(["h264", "hevc", "all"]), default="all", show_default=True,
              help="Conventional codec(s) to compare against.")
@click.option("--crf", "crfs", type=click.IntRange(0, 51), multiple=True, metavar="N",
              help="Baseline CRF (repeatable). Default: a sweep from CRF 32 in steps of 5 whose bpp brackets "
                   "the nervcodec targets.")
@click.option("--preset", type=click.Choice(X264_PRESETS), default="medium", show_default=True,
              help="Effort of every codec: x264/x265's preset (medium = the NeRV papers' anchors; veryslow for a "
                   "strong anchor) and nervcodec's (its encode --preset) unless --nerv-preset says otherwise.")
@click.option("--bframes", type=click.IntRange(0, 16), default=0, show_default=True,
              help="B-frames for x264/x265 (0 = the NeRV papers' anchors).")
@click.option("--container", type=click.Choice(sorted(CONTAINERS)), default="raw", show_default=True,
              help="Container of the baseline files; their whole size counts in bpp (raw = the elementary stream).")
@click.option("--keep-sei", is_flag=True,
              help="Keep the x264/x265 settings SEI in the baseline streams (with --container mp4: the NeRV "
                   "papers' files, whose rate that text and the boxes inflate).")
@click.option("--bpp", "bpps", type=float, multiple=True, metavar="B",
              help="nervcodec target rate in bits per pixel (repeatable). Default: four rates doubling from "
                   "160 kbit / (frames*W*H), the lowest clamped to 0.02..0.2.")
@click.option("--model", type=click.Choice(model_names()), default="dnerv", show_default=True,
              help="nervcodec model family.")
@click.option("--nerv-preset", default=None, metavar="EFFORT",
              help="nervcodec's effort preset when it differs from the baselines' --preset.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="nervcodec fitting epochs instead of its effort preset's steps.")
@click.option("--device", default="auto", show_default=True, help="Device for nervcodec: auto, cpu, cuda, cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True, help="nervcodec random seed.")
@click.option("--no-nerv", is_flag=True, help="Run only the baselines.")
@click.option("--vmaf", is_flag=True, help="Also compute VMAF (libvmaf in the bundled ffmpeg).")
@click.option("--bd-method", type=click.Choice(["akima", "pchip", "cubic"]), default="akima", show_default=True,
              help="Interpolation of the Bjontegaard deltas.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Keep encoded files and write results.json, results.csv and RD plots here.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None, metavar="CLEAN",
              help="Measure every codec against this clean clip instead of the input (denoising: the input is "
                   "the noisy clip).")
@click.option("--holdout", default=None, metavar="SPLIT",
              help="nervcodec fits only these frames (every:N or A_B_C) and is scored on seen and unseen "
                   "frames, next to the neighbour average.")
@click.option("--mask", default=None, metavar="MASK",
              help="nervcodec never sees these holes (disperse[:S], central, PNG(s)); scored inside and outside.")
@click.option("--figures", is_flag=True,
              help="Write DIR/figures/CLIP.png: the source's middle frame and each codec's at matched rates, "
                   "side by side, with a zoomed crop and an error map (needs --out).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout (table goes to stderr).")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def bench(inputs: Tuple[str, ...], baseline: str, crfs: Tuple[int, ...], preset: str, bframes: int,
          container: str, keep_sei: bool, bpps: Tuple[float, ...], model: str, nerv_preset: Optional[str],
          epochs: Optional[int], device: str, seed: int, no_nerv: bool, vmaf: bool, bd_method: str, out_dir: Optional[str], reference: Optional[str],
          holdout: Optional[str], mask: Optional[str], figures: bool, as_json: bool, quiet: bool) -> None:
    """Compare nervcodec with H.264 / HEVC on INPUT videos: RD table, BD-rate, plots.

    Every codec's output is decoded and measured against the source the same
    way: PSNR-RGB (rgb24 by ffmpeg's default conversion, per-frame mean),
    PSNR-Y and PSNR-YUV on the native planes, MS-SSIM, optional VMAF, and bpp
    from the output file's size.
    """
    try:
        if figures and not out_dir:
            raise ConfigError("--figures writes PNG files into the --out folder; give --out DIR")
        _run(inputs, baseline, crfs, preset, bframes, container, bpps, model, epochs, device, seed, no_nerv, vmaf,
             bd_method, out_dir, as_json, quiet, figures, reference, holdout, mask, keep_sei, nerv_preset)
    except NervCodecError as exc:
        fail(str(exc), exc.exit_code, everywhere=not isinstance(exc, COLLECTIVE))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def _run(inputs, baseline, crfs, preset, bframes, container, bpps, model, epochs, device, seed, no_nerv, vmaf,
         bd_method, out_dir, as_json, quiet, figures=False, reference=None, holdout=None, mask=None,
         keep_sei=False, nerv_preset=None) -> None:
    config = BenchConfig(
        baselines=tuple(BASELINES) if baseline == "all" else (baseline,), crfs=tuple(crfs), preset=preset,
        bframes=bframes, container=container, sei=keep_sei, bpp_targets=tuple(bpps), nerv=not no_nerv, model=model,
        epochs=epochs, nerv_preset=nerv_preset, device=device, seed=seed, vmaf=vmaf, bd_method=bd_method, figures=figures,
        reference=reference, holdout=holdout, mask=mask, bars=not quiet)

    def progress(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    if out_dir:
        prepare_out_dir(out_dir)   # writable (one line if not) and free of a previous run's files, before any work
    workdir = out_dir or tempfile.mkdtemp(prefix="nervcodec-bench-")
    try:
        result = run_bench(list(inputs), config, workdir, out_dir=out_dir, progress=progress)
        if out_dir:
            write_outputs(result, out_dir)
    finally:
        if not out_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    table = format_table(result)
    if as_json:
        click.echo(table, err=True)
        click.echo(json.dumps(to_json(result), indent=2, allow_nan=False))
    else:
        click.echo(table)
