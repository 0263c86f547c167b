"""Tests of nervcodec.bench: command builders, sweep logic, pooling, reports and small in-process runs.

Runs use an 8-frame 64x48 clip generated here; the nervcodec run fits for 2 epochs.
"""
from __future__ import annotations

import csv
import json
import os
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from nervcodec.model import model_names
from nervcodec.bench import (BASELINES, BaselineSettings, BenchConfig, BenchResult, ClipResult, Point,
                             compute_bd, decode_args, default_bpp_targets, describe, encode_args, format_markdown,
                             format_table, pool_points, run_bench, write_outputs)
from nervcodec.bench.runner import CRF_GRID, select_sweep
from nervcodec.cli import cli
from nervcodec.cli.bench import bench
from nervcodec.errors import ConfigError
from nervcodec.io import Frames, VideoInfo, pixel_format, write_video
from nervcodec.metrics import compare_videos
from nervcodec.tools.ffmpeg import run_ffmpeg


def tiny_clip(path, width: int = 64, height: int = 48, n: int = 8) -> str:
    """A smooth moving pattern (so codecs behave as on real video) written as y4m."""
    pf = pixel_format("yuv420p")
    rng = np.random.default_rng(0)
    planes = []
    for i, (h, w) in enumerate(pf.plane_shapes(width, height)):
        yy, xx = np.mgrid[0:h, 0:w]
        t = np.arange(n)[:, None, None]
        v = 128 + 70 * np.sin((xx[None] + 2 * t) / (6.0 + i)) * np.cos((yy[None] - t) / (5.0 + i))
        planes.append(np.clip(np.round(v + rng.normal(0, 3, (n, h, w))), 16, 235).astype(np.uint8))
    frames = Frames(tuple(planes), pf)
    write_video(str(path), VideoInfo(width, height, pf, Fraction(25), n, "tiny"), frames)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "tiny.y4m")


# --------------------------------------------------------------------------- command builders


def test_registry_and_fair_default_commands():
    assert set(BASELINES) == {"h264", "hevc"}
    s = BaselineSettings()
    # ffmpeg-python (the adapter's build_args) writes -map and -f first, then the other output options sorted
    # by name; ffmpeg does not care about their order within one output.
    assert encode_args("h264", "in.y4m", "out.264", 28, s) == [
        "-i", "in.y4m", "-map", "0:v:0", "-f", "h264", "-an", "-bf", "0", "-bsf:v", "filter_units=remove_types=6",
        "-c:v", "libx264", "-crf", "28", "-dn", "-pix_fmt", "yuv420p", "-preset", "medium", "-sn", "out.264"]
    assert encode_args("hevc", "in.y4m", "out.265", 38, s) == [
        "-i", "in.y4m", "-map", "0:v:0", "-f", "hevc", "-an", "-c:v", "libx265", "-crf", "38", "-dn",
        "-pix_fmt", "yuv420p", "-preset", "medium", "-sn", "-x265-params", "bframes=0:info=0", "out.265"]


def test_seed_paper_commands_on_request():
    s = BaselineSettings(container="mp4", sei=True)
    assert encode_args("h264", "in.y4m", "out.mp4", 28, s) == [
        "-i", "in.y4m", "-map", "0:v:0", "-f", "mp4", "-an", "-bf", "0", "-c:v", "libx264", "-crf", "28",
        "-dn", "-pix_fmt", "yuv420p", "-preset", "medium", "-sn", "out.mp4"]
    assert encode_args("hevc", "in.y4m", "out.mp4", 38, s) == [
        "-i", "in.y4m", "-map", "0:v:0", "-f", "mp4", "-an", "-c:v", "libx265", "-crf", "38", "-dn",
        "-pix_fmt", "yuv420p", "-preset", "medium", "-sn", "-x265-params", "bframes=0", "out.mp4"]


def test_stronger_anchor_settings_and_containers():
    s = BaselineSettings(preset="veryslow", bframes=3, container="raw")
    h264 = encode_args("h264", "a", "b.264", 20, s)
    assert h264[h264.index("-preset") + 1] == "veryslow" and h264[h264.index("-bf") + 1] == "3"
    assert h264[h264.index("-f") + 1] == "h264" and h264[-1] == "b.264"
    hevc = encode_args("hevc", "a", "b.265", 20, s)
    assert hevc[hevc.index("-x265-params") + 1] == "bframes=3:info=0" and hevc[hevc.index("-f") + 1] == "hevc"
    assert describe("hevc", s) == ("-c:v libx265 -preset veryslow -x265-params bframes=3:info=0 -crf CRF "
                                   "-pix_fmt yuv420p (raw elementary stream, settings SEI removed)")


@pytest.mark.parametrize("bad", [
    lambda: encode_args("h264", "a", "b", 52),
    lambda: encode_args("h264", "a", "b", -1),
    lambda: encode_args("vp9", "a", "b", 30),
    lambda: BaselineSettings(preset="warp"),
    lambda: BaselineSettings(bframes=17),
    lambda: BaselineSettings(container="avi"),
    lambda: BenchConfig(baselines=(), nerv=False),
    lambda: BenchConfig(bpp_targets=(0.0,)),
    lambda: BenchConfig(model="hnerv"),
])
def test_bad_settings_are_config_errors(bad):
    with pytest.raises(ConfigError):
        bad()


def test_bench_takes_every_registered_model():
    for name in model_names():
        assert BenchConfig(model=name).model == name


def test_decode_args_target_the_source_pixel_format():
    args = decode_args("x.mp4", "x.y4m", "yuv420p10le")
    assert args[:2] == ["-i", "x.mp4"] and args[-1] == "x.y4m"
    assert args[args.index("-pix_fmt") + 1] == "yuv420p10le" and "-strict" in args


# --------------------------------------------------------------------------- sweep and targets


def test_default_targets_follow_clip_size():
    assert default_bpp_targets(176, 144, 48) == [0.13, 0.26, 0.52, 1.04]
    assert default_bpp_targets(1920, 1080, 600) == [0.02, 0.04, 0.08, 0.16]
    assert default_bpp_targets(64, 48, 8) == [0.2, 0.4, 0.8, 1.6]


def test_select_sweep_keeps_span_and_one_point_beyond_each_end():
    measured = {17: 2.0, 22: 1.0, 27: 0.5, 32: 0.25, 37: 0.12, 42: 0.06}
    assert select_sweep(measured, 0.3, 0.9) == [22, 27, 32]
    assert select_sweep(measured, 0.1, 5.0) == [17, 22, 27, 32, 37, 42]
    assert select_sweep(measured, 0.01, 0.05) == [42]


# --------------------------------------------------------------------------- pooling, BD, reports


def _pt(codec, clip, crf, bpp, psnr, frames=10, target=None):
    return Point(codec=codec, clip=clip, crf=crf, target_bpp=target, bpp=bpp, bytes=int(bpp * 1000), frames=frames,
                 width=16, height=16, psnr_rgb=psnr, psnr_y=psnr + 1, psnr_u=None, psnr_v=None, psnr_yuv=psnr + 2,
                 ms_ssim=1 - 10 ** (-psnr / 40), vmaf=None, encode_seconds=1.0, decode_seconds=0.5)


def _clip(name, frames, shift):
    c = ClipResult(name=name, path=name, width=16, height=16, frames=frames, fps="25", pix_fmt="yuv420p",
                   bpp_targets=[0.1, 0.2], crfs={"hevc": [22, 27, 32]})
    c.points = [_pt("hevc", name, crf, b, q + shift, frames) for crf, b, q in ((22, 0.4, 36), (27, 0.2, 33), (32, 0.1, 30))]
    c.points += [_pt("nervcodec", name, None, b, q + shift, frames, target=t)
                 for t, b, q in ((0.1, 0.1, 31.0), (0.2, 0.2, 34.0), (0.4, 0.4, 37.0))]
    c.bd = compute_bd(c.points, ["hevc"])
    return c


def test_pooling_is_frame_weighted():
    a, b = _clip("a", 10, 0.0), _clip("b", 30, 4.0)
    pooled = pool_points([a, b])
    hevc27 = next(p for p in pooled if p.codec == "hevc" and p.crf == 27)
    assert hevc27.psnr_rgb == pytest.approx((10 * 33 + 30 * 37) / 40)
    assert hevc27.frames == 40 and hevc27.bytes == 400 and hevc27.encode_seconds == 2.0
    assert len([p for p in pooled if p.codec == "nervcodec"]) == 3
    assert pool_points([a]) == []


def test_compute_bd_on_synthetic_curves():
    c = _clip("a", 10, 0.0)
    r = c.bd["hevc"]["psnr_rgb"]
    assert r.bd_quality == pytest.approx(1.0, abs=1e-6)   # nervcodec is 1 dB better everywhere
    assert r.bd_rate < 0 and r.overlap_rate == pytest.approx(1.0)
    assert set(c.bd["hevc"]) == {"psnr_rgb", "psnr_yuv", "ms_ssim"}


def test_reports_json_csv_table_and_plots(tmp_path):
    clips = [_clip("a", 10, 0.0), _clip("b", 30, 4.0)]
    res = BenchResult(clips=clips, settings=BenchConfig().describe())
    res.pooled_points = pool_points(clips)
    res.pooled_bd = compute_bd(res.pooled_points, ["hevc"])
    files = write_outputs(res, str(tmp_path))
    data = json.loads(open(files["json"]).read())
    assert {"points", "bd", "pooled", "settings", "clips"} <= set(data)
    assert len(data["points"]) == 12 and data["points"][0]["codec"] == "hevc"
    assert data["bd"]["hevc"]["bd_psnr"] == pytest.approx(1.0, abs=1e-6)
    assert set(data["bd"]["per_clip"]) == {"a", "b"}
    rows = list(csv.DictReader(open(files["csv"])))
    assert len(rows) == 12 + len(res.pooled_points) and rows[-1]["clip"] == "pooled"
    for key in ("plot_psnr_rgb", "plot_ms_ssim"):
        assert open(files[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    table = format_table(res)
    assert "Pooled over 2 clips (frame-weighted)" in table and "BD-rate" in table and "overlap" in table
    md = format_markdown(res)
    assert "### a" in md and "### Pooled over 2 clips (frame-weighted)" in md and "| hevc | 27 |" in md


# --------------------------------------------------------------------------- in-process runs


def test_bench_no_nerv_cli_matches_independent_measurement(clip, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(bench, [clip, "--baseline", "all", "--crf", "30", "--crf", "40", "--no-nerv",
                                   "--vmaf", "--out", str(out), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [(p["codec"], p["crf"]) for p in data["points"]] == [("h264", 40), ("h264", 30), ("hevc", 40), ("hevc", 30)]
    assert data["bd"] == {}
    assert (out / "rd_psnr_rgb.png").is_file() and (out / "rd_ms_ssim.png").is_file()
    assert (out / "results.json").is_file() and (out / "results.csv").is_file()
    assert "3x3 Gaussian window" in data["clips"][0]["ms_ssim_note"]
    # independent: encode with the same settings, decode with plain ffmpeg, compare
    p = next(p for p in data["points"] if p["codec"] == "hevc" and p["crf"] == 30)
    enc, dec = str(tmp_path / "x.265"), str(tmp_path / "x.y4m")
    run_ffmpeg(["-i", clip, "-c:v", "libx265", "-preset", "medium", "-x265-params", "bframes=0:info=0", "-crf", "30",
                "-pix_fmt", "yuv420p", "-f", "hevc", enc])
    run_ffmpeg(["-i", enc, "-f", "yuv4mpegpipe", dec])
    assert p["bytes"] == os.path.getsize(enc) == os.path.getsize(out / p["file"])
    assert p["bpp"] == pytest.approx(os.path.getsize(enc) * 8 / (8 * 64 * 48))
    rep = compare_videos(clip, dec)
    assert p["psnr_rgb"] == pytest.approx(rep.psnr_rgb) and p["psnr_y"] == pytest.approx(rep.psnr_y)
    assert p["encode_seconds"] > 0 and p["decode_seconds"] > 0
    assert all(0 < q["vmaf"] <= 100 for q in data["points"])


def test_default_crf_sweep_brackets_the_targets(clip, tmp_path):
    cfg = BenchConfig(baselines=("h264",), nerv=False, bpp_targets=(0.3, 0.6))
    res = run_bench([clip], cfg, str(tmp_path))
    pts = res.clips[0].points
    crfs = sorted(p.crf for p in pts)
    assert set(crfs) <= set(CRF_GRID) and len(crfs) >= 2
    bpps = sorted(p.bpp for p in pts)
    assert bpps[0] <= 0.3 or crfs[-1] == CRF_GRID[-1]
    assert bpps[-1] >= 0.6 or crfs[0] == CRF_GRID[0]
    # only kept points leave files behind
    kept = {os.path.basename(p) for p in os.listdir(os.path.join(str(tmp_path), "tiny"))}
    assert kept == {f"h264_crf{c}.264" for c in crfs}


def test_bench_with_nervcodec_in_process(clip, tmp_path):
    """Two nervcodec points (2 epochs: quality is poor, which exercises the no-overlap path too).

    A third target is far too low for any model: it is skipped with a note, not fatal.
    """
    out = tmp_path / "out"
    r = CliRunner().invoke(bench, [clip, "--baseline", "h264", "--crf", "30", "--crf", "45", "--model", "nerv",
                                   "--epochs", "2", "--bpp", "0.8", "--bpp", "1.6", "--bpp", "0.001", "--device", "cpu",
                                   "--out", str(out), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    nerv = [p for p in data["points"] if p["codec"] == "nervcodec"]
    assert [p["target_bpp"] for p in nerv] == [0.8, 1.6] and all(p["crf"] is None for p in nerv)
    for p in nerv:
        assert p["bytes"] == os.path.getsize(out / p["file"])
        assert p["bpp"] == pytest.approx(p["bytes"] * 8 / (8 * 64 * 48))
        assert p["psnr_rgb"] > 0 and 0 <= p["ms_ssim"] <= 1
        # what the weights cost and what quantizing them lost, as encode --json reports them
        info = json.loads(CliRunner().invoke(cli, ["info", "--json", str(out / p["file"])]).stdout)
        assert p["params"] == info["params"] > 0
        assert p["bits_per_param"] == pytest.approx(info["weights_bytes"] * 8 / info["params"])
        assert p["fit_psnr_float"] > 0 and p["fit_psnr_quantized"] > 0
    assert all(p["params"] is None and p["fit_psnr_float"] is None for p in data["points"] if p["codec"] == "h264")
    bd = data["bd"]["h264"]
    assert {"bd_rate", "bd_psnr", "overlap_quality", "overlap_rate", "by_metric"} <= set(bd)
    if bd["overlap_quality"] == 0:
        assert bd["bd_rate"] is None
    assert "nervcodec vs h264" in r.stderr
    assert any("0.001 bpp skipped" in n for n in data["notes"])
