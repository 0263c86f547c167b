"""A new user's first hour (issue 16): outputs that do what their names say, one-line errors,
-q and -v where people put them, bench folders that hold one run."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, encode
from nervcodec.codec.progress import ProgressBar
from nervcodec.io import write_video

from conftest import make_clip

FAST = ["--model", "nerv", "--params", "2500", "--epochs", "1", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "c.y4m"
    write_video(path, *make_clip(width=16, height=16, frames=3))
    return path


def test_encode_refuses_an_output_that_is_not_a_nerv_file(tmp_path, clip):
    victim = tmp_path / "victim.y4m"
    victim.write_bytes(b"precious")
    res = run("encode", clip, victim, "--force", *FAST)
    assert res.exit_code != 0 and "does not end in .nerv" in res.output and "victim.nerv" in res.output
    assert victim.read_bytes() == b"precious"


def test_decoding_a_collection_to_one_file_name_is_refused(tmp_path, clip):
    other = tmp_path / "d.y4m"
    write_video(other, *make_clip(width=16, height=16, frames=3, name="d"))
    encode([clip, other], tmp_path / "set.nerv", EncodeConfig(model="dnerv", params=6000, epochs=1, device="cpu",
                                                               clip_len=2, keyframe_quality=40))
    res = run("decode", tmp_path / "set.nerv", "-o", tmp_path / "x.y4m")
    assert res.exit_code != 0 and "holds 2 videos" in res.output and "--video" in res.output
    assert not (tmp_path / "x.y4m").exists()


def test_quiet_hides_progress_not_the_result(tmp_path, clip):
    res = run("encode", clip, tmp_path / "o.nerv", *FAST, "-q", "--verify")
    assert res.exit_code == 0 and "bytes" in res.output and "verified:" in res.output
    res = run("decode", tmp_path / "o.nerv", "-o", tmp_path / "o.y4m", "-q")
    assert res.exit_code == 0 and res.output.startswith("decoded 3 frames")


def test_click_usage_errors_are_one_nervcodec_line_and_verbose_goes_anywhere(tmp_path, clip):
    res = run("decode", tmp_path / "o.nerv")
    assert res.exit_code == 2 and res.output.startswith("nervcodec: error: Missing option")
    assert "decode --help" in res.output and "Usage:" not in res.output
    assert run("encode", clip, tmp_path / "v.nerv", *FAST, "-q", "-v").exit_code == 0
    assert run("--help").exit_code == 0 and "Usage:" in run("--help").output


def test_a_truncated_file_is_named_in_the_error(tmp_path, clip):
    encode([clip], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2500, epochs=1, device="cpu"))
    cut = tmp_path / "cut.nerv"
    cut.write_bytes((tmp_path / "o.nerv").read_bytes()[:200])
    res = run("info", cut)
    assert res.exit_code != 0 and str(cut) in res.output and "truncated" in res.output


def test_the_progress_bar_labels_its_psnr_and_counts_from_its_first_step(capsys):
    with ProgressBar(True, "fitting") as bar:
        bar(100, 200, 30.0)
        bar(150, 200, 31.0)
    err = capsys.readouterr().err
    assert "150/200" in err and "training PSNR 31.00 dB" in err


def test_bench_out_unwritable_is_one_line_and_a_rerun_removes_the_previous_files(tmp_path, clip):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run("bench", clip, "--no-nerv", "--out", blocker / "out")
    assert res.exit_code != 0 and res.output.count("\n") == 1 and "--out" in res.output
    out = tmp_path / "b"
    assert run("bench", clip, "--no-nerv", "--baseline", "h264", "--crf", "30", "--out", out, "-q").exit_code == 0
    old = json.loads((out / "results.json").read_text())["points"][0]["file"]
    assert (out / old).exists()
    (out / "mine.txt").write_text("keep")
    assert run("bench", clip, "--no-nerv", "--baseline", "h264", "--crf", "40", "--out", out, "-q").exit_code == 0
    assert not (out / old).exists() and (out / "mine.txt").exists()
    assert [p["crf"] for p in json.loads((out / "results.json").read_text())["points"]] == [40]
    assert not (out / "c" / "decoded").exists()


def test_an_interrupted_bench_leaves_no_decoded_folder(tmp_path, clip, monkeypatch):
    import nervcodec.bench.runner as runner

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(runner, "compare_videos", interrupted)
    res = run("bench", clip, "--no-nerv", "--baseline", "h264", "--crf", "30", "--out", tmp_path / "b")
    assert res.exit_code == 130 and not os.path.exists(tmp_path / "b" / "c" / "decoded")


def test_default_baselines_are_elementary_streams_without_the_settings_sei(tmp_path, clip):
    out = tmp_path / "b"
    res = run("bench", clip, "--no-nerv", "--crf", "30", "--out", out, "--json", "-q")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    for p in d["points"]:
        data = (out / p["file"]).read_bytes()
        assert p["file"].endswith((".264", ".265")) and p["bytes"] == len(data)
        assert b"x264 - core" not in data and b"x265 (build" not in data and b"ftyp" not in data
    assert "settings SEI removed" in d["settings"]["baselines"]["hevc"]["settings"]
    papers = tmp_path / "p"
    res = run("bench", clip, "--no-nerv", "--crf", "30", "--out", papers, "--container", "mp4", "--keep-sei",
              "--json", "-q")
    kept = json.loads(res.stdout)["points"]
    assert all(b"ftyp" in (papers / p["file"]).read_bytes() for p in kept)
    hevc_papers = [p for p in kept if p["codec"] == "hevc"][0]
    assert b"x265 (build" in (papers / hevc_papers["file"]).read_bytes()
    assert hevc_papers["bytes"] > [p for p in d["points"] if p["codec"] == "hevc"][0]["bytes"]


def test_baselines_keep_the_source_bit_depth_or_refuse(tmp_path):
    from nervcodec.bench.baselines import BaselineSettings, encode_args
    ten = tmp_path / "ten.y4m"
    write_video(ten, *make_clip(width=16, height=16, frames=2, pix_fmt="yuv420p10le"))
    out = tmp_path / "b"
    res = run("bench", ten, "--no-nerv", "--crf", "20", "--out", out, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert all(p["psnr_y"] > 30 for p in json.loads(res.stdout)["points"])
    args = encode_args("h264", "in.y4m", "o.264", 30, BaselineSettings(pix_fmt="yuv420p10le"))
    assert args[args.index("-pix_fmt") + 1] == "yuv420p10le"
    twelve = tmp_path / "twelve.y4m"
    write_video(twelve, *make_clip(width=16, height=16, frames=2, pix_fmt="yuv420p12le"))
    res = run("bench", twelve, "--no-nerv", "--baseline", "h264", "--crf", "30")
    assert res.exit_code != 0 and "cannot code yuv420p12le" in res.output and "--baseline hevc" in res.output


def test_a_file_over_its_budget_is_trimmed_to_land_at_or_under_the_target(tmp_path, capsys):
    import dataclasses

    import numpy as np

    from nervcodec.codec.coding import code
    from nervcodec.codec.fitting import fit_model
    from nervcodec.codec.plan import plan
    from nervcodec.codec.verification import verify
    src = tmp_path / "m.y4m"
    from conftest import make_moving_clip
    write_video(src, *make_moving_clip(width=32, height=24, frames=9))
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(model="nerv", bpp=3.0, epochs=3, device="cpu"))
    fitted = fit_model(p)
    finer = dataclasses.replace(fitted, steps={k: (v.astype(np.float32) * 0.6).astype(np.float16)
                                               for k, v in fitted.steps.items()})
    capsys.readouterr()
    coded = code(p, finer, progress=True)       # each stage after the fit says when it starts
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 3, said
    assert said[0].startswith("coding the file (") and f"over the budget of {p.budget}: coding it again" in said[1]
    assert said[2] == f"coded: {len(coded.data)} bytes; decoding its 9 frames to measure them"
    assert len(coded.data) <= p.budget < len(code(dataclasses.replace(p, budget=None), finer).data)
    (tmp_path / "o.nerv").write_bytes(coded.data)
    assert verify(tmp_path / "o.nerv", [src], "cpu").psnr_yuv == pytest.approx(coded.psnr, abs=1e-6)
    res = encode([src], tmp_path / "e.nerv", EncodeConfig(model="nerv", bpp=3.0, epochs=3, device="cpu"))
    assert res.bpp <= 3.0


def test_a_file_far_over_its_budget_is_trimmed_too_or_says_it_is_over(tmp_path):
    """A fit far from its rate (a very short one) is trimmed by whatever power of two of the steps fits, not
    only up to 2x; a budget that nothing fits (under the side information) and fixed-precision weights leave
    the file over its budget with a warning in the result, never silently."""
    import dataclasses

    import numpy as np

    from nervcodec.codec.coding import code
    from nervcodec.codec.fitting import fit_model
    from nervcodec.codec.plan import plan
    from nervcodec.errors import NervCodecWarning
    src = tmp_path / "m.y4m"
    from conftest import make_moving_clip
    write_video(src, *make_moving_clip(width=32, height=24, frames=9))
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(model="nerv", bpp=3.0, epochs=3, device="cpu"))
    fitted = fit_model(p)
    def scaled(f):
        return dataclasses.replace(fitted, steps={k: (v.astype(np.float32) * f).astype(np.float16)
                                                  for k, v in fitted.steps.items()})
    finer = scaled(1 / 64)
    untrimmed = len(code(dataclasses.replace(p, budget=None), finer).data)
    assert len(code(dataclasses.replace(p, budget=None), scaled(2 / 64)).data) > p.budget   # x2: not enough
    coded = code(p, finer)
    assert len(coded.data) <= p.budget and coded.warnings == ()
    with pytest.warns(NervCodecWarning, match="symbols are all zero"):
        tiny = code(dataclasses.replace(p, budget=50), finer)
    assert len(tiny.data) == untrimmed and "over the 3 bpp budget of 50 bytes" in tiny.warnings[0]
    first = next(iter(finer.steps))          # a step near float16's largest stops there when scaled, never inf
    big = dataclasses.replace(finer, steps={**finer.steps, first: np.full_like(finer.steps[first], 30000.0)})
    assert len(code(p, big).data) <= p.budget       # trimmed past x2 (the file is decoded to measure it)
    fixed = plan([src], tmp_path / "f.nerv", EncodeConfig(model="nerv", bpp=3.0, epochs=1, quant_bits=8,
                                                         device="cpu"))
    with pytest.warns(NervCodecWarning, match="--quant-bits"):
        over = code(dataclasses.replace(fixed, budget=100), fit_model(fixed))
    assert len(over.data) > 100 and over.warnings
    import importlib
    encoder = importlib.import_module("nervcodec.codec.encoder")
    real = encoder.plan
    with pytest.MonkeyPatch.context() as mp:       # the CLI's --json result carries the warning
        mp.setattr(encoder, "plan", lambda *a, **k: dataclasses.replace(real(*a, **k), budget=100))
        res = run("encode", src, tmp_path / "w.nerv", "--model", "nerv", "--quant-bits", "8", "--bpp", "3",
                  "--epochs", "1", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["bytes"] > 100 and len(out["warnings"]) == 1 and "over the 3 bpp budget" in out["warnings"][0]


def test_a_fixed_lambda_needs_no_weights_budget_for_the_grids(tmp_path, clip):
    """--lambda sets the grids' rate: the default --bpp's budget (which sizes the keyframes) does not
    refuse a video too small for it, as it does when --bpp is the target."""
    small = tmp_path / "s.y4m"
    write_video(small, *make_clip(width=32, height=24, frames=6))
    res = run("encode", small, tmp_path / "g.nerv", "--model", "latent-grid", "--steps", "3", "--device", "cpu")
    assert res.exit_code != 0 and "is the least that fits" in res.output
    res = run("encode", small, tmp_path / "g.nerv", "--model", "latent-grid", "--steps", "3", "--lambda", "0.01",
              "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["bytes"] == (tmp_path / "g.nerv").stat().st_size


def test_decode_replaces_an_existing_output_only_when_asked(tmp_path, clip):
    encode([clip], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2500, epochs=1, device="cpu"))
    out = tmp_path / "o.y4m"
    out.write_bytes(b"mine")
    res = run("decode", tmp_path / "o.nerv", "-o", out)
    assert res.exit_code != 0 and "--force" in res.output and out.read_bytes() == b"mine"
    assert run("decode", tmp_path / "o.nerv", "-o", out, "-y").exit_code == 0 and out.read_bytes() != b"mine"
    assert run("encode", clip, tmp_path / "o.nerv", *FAST, "-y", "-q").exit_code == 0     # -y as ffmpeg users type it


def test_threads_sets_torch_threads(tmp_path, clip):
    import torch
    before = torch.get_num_threads()
    try:
        assert run("encode", clip, tmp_path / "o.nerv", *FAST, "--threads", "1", "-q").exit_code == 0
        assert torch.get_num_threads() == 1
        res = run("decode", tmp_path / "o.nerv", "-o", tmp_path / "o.y4m", "--threads", "0")
        assert res.exit_code == 2 and "--threads" in res.output and res.output.startswith("nervcodec: error:")
    finally:
        torch.set_num_threads(before)


def test_bench_shows_each_fit_with_its_number_and_a_labelled_bar(tmp_path, clip):
    res = CliRunner().invoke(cli, ["bench", str(clip), "--baseline", "h264", "--crf", "30", "--bpp", "24",
                                   "--model", "nerv", "--epochs", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "(point 1 of 1)" in res.stderr and "optimizer steps" in res.stderr and "training PSNR" in res.stderr


def test_a_rate_too_low_names_the_lowest_rate_that_fits(tmp_path):
    import re
    src = tmp_path / "m.y4m"
    from conftest import make_moving_clip
    write_video(src, *make_moving_clip(width=48, height=32, frames=9))
    res = run("encode", src, tmp_path / "o.nerv", "--device", "cpu", "-q")
    assert res.exit_code != 0 and "the default rate (0.25 bpp)" in res.output and "smallest dnerv model" in res.output
    lowest = re.search(r"--bpp ([0-9.]+) is sure to fit", res.output).group(1)
    ok = run("encode", src, tmp_path / "o.nerv", "--bpp", lowest, "--epochs", "1", "--device", "cpu", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["bpp"] <= float(lowest)


def test_raw_yuv_input_with_size_pix_fmt_and_fps(tmp_path):
    from nervcodec.io import read_video
    info, fr = make_clip(width=16, height=16, frames=3)
    raw = tmp_path / "c.yuv"
    raw.write_bytes(b"".join(fr.to_bytes(i) for i in range(3)))
    res = run("encode", raw, tmp_path / "r.nerv", *FAST, "--size", "16x16", "--pix-fmt", "yuv420p", "--fps", "50",
              "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames"] == 3
    assert run("decode", tmp_path / "r.nerv", "-o", tmp_path / "r.y4m", "-q").exit_code == 0
    dinfo, _ = read_video(tmp_path / "r.y4m")
    assert (dinfo.width, dinfo.height, dinfo.num_frames, float(dinfo.fps)) == (16, 16, 3, 50.0)
    res = run("encode", raw, tmp_path / "x.nerv", *FAST)
    assert res.exit_code != 0 and "--size" in res.output and "--pix-fmt" in res.output
    res = run("encode", raw, tmp_path / "x.nerv", *FAST, "--size", "16x15", "--pix-fmt", "yuv420p")
    assert res.exit_code != 0 and "whole number" in res.output


def test_decode_output_rule_pattern_means_pngs_folder_means_one_y4m_per_video(tmp_path, clip):
    encode([clip], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2500, epochs=1, device="cpu"))
    assert run("decode", tmp_path / "o.nerv", "-o", tmp_path / "png" / "%03d.png", "--frames", "1:3").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["001.png", "002.png"]   # numbered as ffmpeg does
    assert run("decode", tmp_path / "o.nerv", "-o", str(tmp_path / "dir") + "/").exit_code == 0
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["c.y4m"]
    assert "PNG pattern" in run("decode", "--help").output


def test_rd_plots_come_as_png_pdf_and_svg_with_ms_ssim_in_db(tmp_path, clip):
    out = tmp_path / "b"
    assert run("bench", clip, "--no-nerv", "--baseline", "h264", "--crf", "30", "--crf", "40", "--out", out,
               "-q").exit_code == 0
    assert (out / "rd_psnr_rgb.pdf").read_bytes()[:4] == b"%PDF"
    assert b"<svg" in (out / "rd_ms_ssim.svg").read_bytes()[:2000]
    from nervcodec.bench.report import _plotted
    assert _plotted(0.99, "ms_ssim") == pytest.approx(20.0) and _plotted(31.5, "psnr_rgb") == 31.5


def test_the_expected_fitting_time_is_said_once_up_front_from_the_steps_alone(capsys):
    """Said at the second update, from the steps between the first two: the time before the first one
    (data, the starting model's evaluation, warm-up; 0.5 s here) does not count (it made a people fit
    of 4.2 minutes announce 9)."""
    import re
    import time as _time
    with ProgressBar(True, "fitting") as bar:
        _time.sleep(0.5)
        bar(10, 100, 20.0)
        _time.sleep(0.05)
        bar(20, 100, 21.0)
        _time.sleep(0.05)
        bar(30, 100, 22.0)
    err = capsys.readouterr().err
    assert err.count("expected fitting time: about") == 1 and "100 steps" in err
    rate = float(re.search(r"100 steps at ([0-9.]+) steps/s", err).group(1))
    assert rate > 40      # 10 steps in 0.05 s (200 steps/s); counting the 0.5 s before, under 20
    with ProgressBar(True, "fitting") as bar:   # a fit that ends at its first update says nothing
        bar(100, 100, 30.0)
    assert "expected" not in capsys.readouterr().err
    with ProgressBar(True, "fitting") as bar:   # slow steps are said in seconds per step
        bar(1, 100, 20.0)
        _time.sleep(1.1)
        bar(2, 100, 20.0)
    assert float(re.search(r"100 steps at ([0-9.]+) s/step", capsys.readouterr().err).group(1)) >= 1.1


def test_the_expected_fitting_time_is_said_again_once_the_slower_rate_aware_steps_have_run(capsys):
    """An estimate timed on plain steps says so, and is said again from the rate-aware steps' own pace
    (latent grids on bikes: 1.1 steps/s before the rate term, 2-3 s per step after it; the one estimate
    said 36 s for a fit of 151 s)."""
    import re
    import time as _time

    from nervcodec.codec.progress import RESTATE_STEPS
    with ProgressBar(True, "fitting", rate_from=20) as bar:
        bar(10, 200, 20.0)
        _time.sleep(0.05)
        bar(20, 200, 21.0)                   # plain steps 10-19: fast; the rate-aware part starts here
        _time.sleep(0.3)
        bar(20 + RESTATE_STEPS - 1, 200, 22.0)   # not enough rate-aware steps yet
        assert capsys.readouterr().err.count("expected fitting time") == 1
        _time.sleep(0.1)
        bar(20 + RESTATE_STEPS, 200, 22.0)
        _time.sleep(0.1)
        bar(60, 200, 22.0)
    err = capsys.readouterr().err
    assert err.count("expected fitting time") == 1       # said again once, not at every update after
    left = re.search(r"about ([0-9.]+) s more \(([0-9]+) rate-aware steps left at ([0-9.]+) steps/s\)", err)
    assert left and int(left.group(2)) == 200 - 20 - RESTATE_STEPS
    assert float(left.group(3)) < 80 and float(left.group(1)) >= 2   # 25 steps in 0.4 s: not the plain pace
    with ProgressBar(True, "fitting", rate_from=20) as bar:   # timed on rate-aware steps: said once, as is
        bar(30, 200, 20.0)
        _time.sleep(0.05)
        bar(40, 200, 20.0)
        _time.sleep(0.05)
        bar(40 + RESTATE_STEPS, 200, 20.0)
    err = capsys.readouterr().err
    assert err.count("expected fitting time") == 1 and "timed when they run" not in err


def test_review_fixes_masks_scores_fill_and_lazy_indexing(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from nervcodec.io.cache import DiskCache
    from nervcodec.io.video import Frames, pixel_format
    from nervcodec.metrics.tasks import score_tasks
    from nervcodec.tasks import fill_holes, parse_mask
    from PIL import Image
    one_bit = np.zeros((8, 8), bool)
    one_bit[2:4, 2:6] = True
    Image.fromarray(one_bit).save(tmp_path / "m.png")                     # a 1-bit PNG
    assert iio.imread(tmp_path / "m.png").dtype == bool
    assert (parse_mask(str(tmp_path / "m.png")).holes(0, 8, 8) == one_bit).all()
    gray = pixel_format("gray")
    ref = Frames((np.full((2, 8, 8), 100, np.uint8),), gray)
    dec = Frames((np.full((2, 8, 8), 110, np.uint8),), gray)
    holes = np.zeros((2, 8, 8), bool)
    holes[1, 2:4, 2:4] = True                                                # frame 0 has no hole
    s = score_tasks(ref, dec, holes=holes)
    assert s.psnr_rgb_holes == pytest.approx(s.psnr_rgb) and s.psnr_rgb < 40   # not lifted by a 100 dB empty frame
    ten = np.zeros((1, 4, 4), np.uint16)
    assert fill_holes(ten, np.ones((4, 4), bool), 1023).max() <= 1023        # middle grey of 10 bits, not 16
    cache = DiskCache(tmp_path / "c")
    lazy = cache.store_frames([ref], gray, 8, 8, "v.raw").planes[0]
    assert lazy[np.array([False, True])].shape == (1, 8, 8) and lazy[np.int64(1)].shape == (8, 8)
    cache.close()


def test_bench_out_leaves_foreign_results_and_user_folders_alone(tmp_path, clip):
    out = tmp_path / "b"
    out.mkdir()
    (out / "mine").mkdir()
    (out / "keep.txt").write_text("x")
    (out / "results.json").write_text(json.dumps({"points": [{"file": "keep.txt"}], "clips": [], "settings": {}}))
    assert run("bench", clip, "--no-nerv", "--baseline", "h264", "--crf", "30", "--out", out, "-q").exit_code == 0
    assert (out / "keep.txt").exists() and (out / "mine").is_dir()
    first = json.loads((out / "results.json").read_text())
    assert run("bench", clip, "--no-nerv", "--baseline", "h264", "--crf", "40", "--out", out, "-q").exit_code == 0
    assert all(not (out / os.path.relpath(f, out)).exists() or f.endswith(("results.json", ".png", ".csv", ".pdf",
                                                                             ".svg"))
               for f in first["files"].values())
    assert (out / "mine").is_dir()


def test_errors_only_one_rank_meets_are_said_by_that_rank(tmp_path, clip, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    res = run("decode", tmp_path / "missing.nerv", "-o", tmp_path / "x.y4m")    # FormatError: every rank alike
    assert res.exit_code != 0 and res.output == ""
    blocker = tmp_path / "f"
    blocker.write_text("x")
    res = run("bench", clip, "--no-nerv", "--out", blocker / "o")                 # OutputError: this rank's own
    assert res.exit_code != 0 and res.output.startswith("nervcodec: error (rank 1):")
