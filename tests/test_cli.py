"""The command line, in-process: encode -> info -> decode of tiny generated clips."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.io import read_video


def run(*args, ok=True):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


@pytest.fixture
def nerv_file(tmp_path, clip_file):
    src, info, frames = clip_file(width=30, height=22, frames=5)
    out = tmp_path / "clip.nerv"
    res = run("encode", src, out, "--model", "nerv", "--params", "3000", "--epochs", "3", "--device", "cpu",
              "--json")
    return src, out, json.loads(res.output), frames


def test_encode_json_reports_size_on_disk(nerv_file):
    src, out, report, _ = nerv_file
    for key in ("bytes", "bpp", "psnr", "frames", "params", "seconds"):
        assert key in report
    assert report["bytes"] == out.stat().st_size
    assert report["bpp"] == pytest.approx(out.stat().st_size * 8 / (30 * 22 * 5))
    assert report["frames"] == 5


def test_verify_decodes_the_file_from_disk(tmp_path, clip_file):
    src, _, _ = clip_file(width=30, height=22, frames=5)
    out = tmp_path / "v.nerv"
    report = json.loads(run("encode", src, out, "--model", "nerv", "--params", "3000", "--epochs", "2",
                            "--device", "cpu", "--verify", "--json").output)
    v = report["verify"]
    assert v["frames"] == 5
    # The same per-frame 6:1:1 PSNR on the native planes as the encoder's own figure, now from the file.
    assert v["psnr_yuv"] == pytest.approx(report["psnr"], abs=1e-6)
    assert np.isfinite(v["psnr_rgb"]) and 5 < v["psnr_rgb"] < 100
    text = run("encode", src, out, "--model", "nerv", "--params", "3000", "--epochs", "1", "--device", "cpu",
               "--verify", "--quiet", "--force").output
    assert text.count("\n") == 2 and "verified:" in text  # --quiet hides progress, not the result
    text = run("encode", src, out, "--model", "nerv", "--params", "3000", "--epochs", "1", "--device", "cpu",
               "--verify", "--force").output
    assert "verified: decoded from disk, PSNR-RGB" in text


def test_encode_says_each_long_stage_as_it_starts(tmp_path, clip_file):
    """Coding the keyframes, fitting, coding the file and measuring it are said as they start (on bikes the
    keyframes took minutes and the stages after the fit 3.5 minutes, in silence); --quiet says none."""
    src, _, _ = clip_file(width=48, height=32, frames=9)
    out = tmp_path / "s.nerv"
    grid = ["--model", "latent-grid-kf", "--bpp", "4", "--steps", "4", "--device", "cpu"]
    text = run("encode", src, out, *grid, "--clip-len", "4").output
    order = ["coding the keyframes (every 4 frames)", "fitting latent-grid-kf with", "coding the file (",
             "decoding its 9 frames to measure them"]
    assert all(s in text for s in order) and sorted(order, key=text.index) == order, text
    text = run("encode", src, out, *grid, "-y").output
    assert "coding the keyframes every 8, 4, 2 frames to choose the clip length" in text
    quiet = run("encode", src, out, *grid, "-q", "-y").output
    assert "coding" not in quiet and "decoding" not in quiet


def test_verify_a_collection_pools_over_its_videos(tmp_path, clip_file):
    a, _, _ = clip_file(name="first", width=24, height=16, frames=6)
    b, _, _ = clip_file(name="second", width=20, height=14, frames=5, seed=3)
    out = tmp_path / "set.nerv"
    report = json.loads(run("encode", a, b, out, "--params", "6000", "--epochs", "1", "--device", "cpu",
                            "--keyframe-codec", "hevc", "--clip-len", "4", "--verify", "--json").output)
    assert report["verify"]["frames"] == 11
    assert report["verify"]["psnr_yuv"] == pytest.approx(report["psnr"], abs=1e-6)


def test_decode_restores_format_and_size(nerv_file, tmp_path):
    src, out, report, frames = nerv_file
    dec = tmp_path / "dec.y4m"
    run("decode", out, "-o", dec, "--device", "cpu", "--quiet")
    info, got = read_video(dec)
    assert (info.width, info.height, info.num_frames, info.pix_fmt.name) == (30, 22, 5, "yuv420p")
    assert info.fps.numerator == 30000 and info.fps.denominator == 1001
    assert all(g.shape == f.shape for g, f in zip(got.planes, frames.planes))


def test_reported_psnr_is_the_decoders(nerv_file, tmp_path):
    from nervcodec.codec.quality import FrameScores
    src, out, report, frames = nerv_file
    dec = tmp_path / "dec.y4m"
    run("decode", out, "-o", dec, "--quiet")
    _, got = read_video(dec)
    s = FrameScores(frames.pix_fmt)
    for i in range(frames.num_frames):
        s.add([p[i] for p in frames.planes], [p[i] for p in got.planes])
    assert s.psnr_yuv == pytest.approx(report["psnr"], abs=1e-9)


def test_frames_range_equals_full_decode(nerv_file, tmp_path):
    _, out, _, _ = nerv_file
    full, part = tmp_path / "full.y4m", tmp_path / "part.y4m"
    run("decode", out, "-o", full, "--quiet")
    run("decode", out, "-o", part, "--frames", "2:4", "--quiet")
    _, a = read_video(full)
    _, b = read_video(part)
    assert b.num_frames == 2
    for pa, pb in zip(a.planes, b.planes):
        assert np.array_equal(pa[2:4], pb)


def test_info_json(nerv_file):
    _, out, report, _ = nerv_file
    info = json.loads(run("info", out, "--json").output)
    assert info["bytes"] == report["bytes"]
    assert info["model"] == "nerv"
    assert info["weights_bytes"] + info["header_bytes"] + info["keyframe_bytes"] == info["bytes"]
    assert info["videos"][0]["frames"] == 5


def test_decode_twice_identical(nerv_file, tmp_path):
    _, out, _, _ = nerv_file
    a, b = tmp_path / "a.y4m", tmp_path / "b.y4m"
    run("decode", out, "-o", a, "--quiet")
    run("decode", out, "-o", b, "--quiet")
    assert a.read_bytes() == b.read_bytes()


def test_same_seed_same_file(tmp_path, clip_file):
    src, _, _ = clip_file(width=16, height=16, frames=3)
    a, b = tmp_path / "a.nerv", tmp_path / "b.nerv"
    for out in (a, b):
        run("encode", src, out, "--model", "nerv", "--params", "2000", "--epochs", "2", "--device", "cpu", "-q")
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("args, message", [
    (["encode", "missing.y4m", "out.nerv", "--model", "nerv"], "missing.y4m"),
    (["decode", "missing.nerv", "-o", "x.y4m"], "missing.nerv"),
    (["info", "missing.nerv"], "missing.nerv"),
    (["encode", "a.y4m", "out.nerv", "--params", "1000", "--bpp", "0.1"], "only one of"),
])
def test_errors_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0
    err = res.output.strip()
    assert "Traceback" not in err
    assert err.count("\n") == 0, err
    assert message in err


def test_corrupt_file_is_one_line(nerv_file, tmp_path):
    _, out, _, _ = nerv_file
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.nerv"
    bad.write_bytes(bytes(data))
    for args in (["info", bad], ["decode", bad, "-o", tmp_path / "x.y4m"]):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code != 0
        assert "damaged" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.y4m").exists()


def test_demo_runs_on_the_embedded_sample(tmp_path):
    res = run("demo", "--epochs", "1", "--device", "cpu", "--json", "--keep", tmp_path)
    out = json.loads(res.output)
    assert out["frames"] == 16 and out["bytes"] == (tmp_path / "sample.nerv").stat().st_size
    assert out["bpp"] == pytest.approx(out["bytes"] * 8 / (16 * 176 * 144))
    assert (tmp_path / "sample_decoded.y4m").exists()


def test_one_frame_is_singular_and_an_empty_range_says_so(nerv_file, tmp_path):
    _, out, _, _ = nerv_file
    text = run("decode", out, "-o", tmp_path / "one.y4m", "--frames", "2").output
    assert "decoded 1 frame to" in text
    res = run("decode", out, "-o", tmp_path / "none.y4m", "--frames", "4:2", ok=False)
    assert res.exit_code != 0 and "empty range" in res.output and "outside" not in res.output
    res = run("decode", out, "-o", tmp_path / "far.y4m", "--frames", "3:9", ok=False)
    assert "outside the video's 5 frames" in res.output


def test_help_states_the_default_rate():
    text = run("encode", "--help").output
    assert "0.25" in text and "--lambda" in text and "--quant-bits" in text


def test_info_text_shows_numbers_and_json():
    from pathlib import Path
    text = run("info", Path(__file__).parent / "data" / "v1_dnerv.nerv").output
    assert "16x16 yuv420p 29.97 fps (30000/1001), 3 frames" in text
    assert "model: dnerv, 5980 parameters at 8.66 bits, 8-bit quantization" in text
    assert 'layout: {"clip_len": 2, "patch": [16, 16], "substitute": true, "time": "video"}' in text


def test_keyframe_options_with_a_model_without_keyframes_are_refused(tmp_path, clip_file):
    src = clip_file(width=16, height=16, frames=3)[0]
    res = run("encode", src, tmp_path / "o.nerv", "--model", "nerv", "--bpp", "4", "--keyframe-share", "0.4",
              "--device", "cpu", ok=False)
    assert res.exit_code != 0 and "--keyframe-share sets the keyframes" in res.output and "nerv has none" in res.output
    assert not (tmp_path / "o.nerv").exists()


def test_every_command_keeps_freed_memory_for_the_next_step(monkeypatch, tmp_path):
    """The CLI asks glibc to keep a fit's large freed temporaries (nervcodec.alloc); on Linux with glibc it
    takes effect, elsewhere nothing changes and nothing fails."""
    import platform
    import sys

    import importlib

    import nervcodec.alloc as alloc
    calls = []
    monkeypatch.setattr(importlib.import_module("nervcodec.cli.main"), "keep_freed_memory",
                        lambda: calls.append(1) or True)
    res = run("decode", str(tmp_path / "missing.nerv"), "-o", str(tmp_path / "o.y4m"), ok=False)
    assert res.exit_code != 0 and calls == [1]
    took = alloc.keep_freed_memory()
    assert took == (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")
    assert alloc.keep_freed_memory() == took                       # idempotent


def test_encode_says_when_its_keyframes_took_the_budget_the_network_left(tmp_path, clip_file, monkeypatch):
    """The summary line is followed by one saying the keyframes were coded again after the fit (the
    encoder's side of it is tested in test_keyed_grid.py); a file without that says nothing of it."""
    import dataclasses

    import nervcodec.codec as codec_pkg
    src, _, _ = clip_file(width=30, height=22, frames=5)
    args = ["encode", src, tmp_path / "r.nerv", "--model", "nerv", "--params", "3000", "--epochs", "1",
            "--device", "cpu", "-q", "-y"]
    assert "keyframes coded again" not in run(*args).output
    real = codec_pkg.encode
    monkeypatch.setattr(codec_pkg, "encode", lambda *a, **k: dataclasses.replace(
        real(*a, **k), keyframes_recoded=True, keyframe_quality=40, keyframe_bytes=1234))
    text = run(*args).output
    assert text.count("\n") == 2 and "keyframes coded again after the fit, at quality 40 (1234 bytes)" in text
