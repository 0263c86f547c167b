"""Tests of benchmarks/rd_models.py: several models' curves beside the anchors, from bench results."""
from __future__ import annotations

import json

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def rm():
    return load_benchmark("rd_models")


def _results(path, clip, nerv, hevc=(), h264=()):
    pts = [{"codec": c, "clip": clip, "bpp": b, "psnr_rgb": q}
           for c, curve in (("nervcodec", nerv), ("hevc", hevc), ("h264", h264)) for b, q in curve]
    path.write_text(json.dumps({"points": pts}))
    return str(path)


HEVC = [(0.1, 30.0), (0.2, 33.0), (0.4, 36.0), (0.8, 39.0)]
H264 = [(0.1, 28.5), (0.2, 31.5), (0.4, 34.5), (0.8, 37.5)]


def test_each_curve_against_both_anchors_and_the_reference(rm, tmp_path, capsys):
    a = _results(tmp_path / "a.json", "c", [(0.1, 30.0), (0.2, 33.0), (0.4, 36.0)], HEVC, H264)   # on x265's curve
    b = _results(tmp_path / "b.json", "c", [(0.1, 29.0), (0.2, 32.0), (0.4, 35.0)])             # 1 dB under it
    other = _results(tmp_path / "d.json", "d", [(0.1, 20.0), (0.2, 22.0)])
    rows = rm.table(rm.parse_runs([f"grid={a}", f"dnerv={b}", f"dnerv={other}"]), "psnr_rgb", "dnerv")
    by = {(r["clip"], r["curve"]): r for r in rows}
    assert [r["curve"] for r in rows if r["clip"] == "c"] == ["x265 medium", "x264 medium", "grid", "dnerv"]
    grid = by[("c", "grid")]["against"]
    assert grid["x265 medium"]["bd_quality"] == pytest.approx(0.0, abs=1e-6)
    assert grid["x264 medium"]["bd_quality"] == pytest.approx(1.5, abs=1e-6)    # x264 is 1.5 dB under x265
    assert grid["dnerv"]["bd_quality"] == pytest.approx(1.0, abs=1e-6) and grid["dnerv"]["bd_rate"] < 0
    assert "dnerv" not in by[("c", "dnerv")]["against"]                        # not against itself
    assert by[("c", "dnerv")]["against"]["x265 medium"]["bd_quality"] == pytest.approx(-1.0, abs=1e-6)
    assert by[("d", "dnerv")]["against"] == {}          # a clip without anchors or reference: points only
    assert ("d", "grid") not in by
    md = rm.markdown(rows, "psnr_rgb", "dnerv")
    assert md.splitlines()[0] == ("| clip | curve | bpp -> psnr_rgb | against x265 medium | against x264 medium "
                                  "| against dnerv |")
    assert "| c | grid | 0.100 -> 30.00, 0.200 -> 33.00, 0.400 -> 36.00 | " in md
    assert rm.main(["--run", f"grid={a}", "--run", f"dnerv={b}", "--reference", "dnerv", "--markdown",
                    "--plot", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and "| c | dnerv |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="LABEL=PATH"):
        rm.parse_runs(["no-label"])
    with pytest.raises(SystemExit, match="not one of the runs"):
        rm.main(["--run", f"grid={a}", "--reference", "nerv"])


def test_repeated_runs_of_one_clip_make_their_mean_curve(rm, tmp_path, capsys):
    """Several files of one label for one clip are seeds of one bench: their mean curve is compared, each run
    with each reference run too, and the runs' spread is shown; runs with unequal point counts are refused."""
    s0 = _results(tmp_path / "s0.json", "c", [(0.1, 30.0), (0.2, 33.0), (0.4, 36.0)], HEVC)
    s1 = _results(tmp_path / "s1.json", "c", [(0.4, 36.0), (0.1, 32.0), (0.2, 35.0)])      # 2 dB above s0
    g = _results(tmp_path / "g.json", "c", [(0.1, 32.0), (0.2, 35.0), (0.4, 38.0)])
    rows = rm.table(rm.parse_runs([f"dnerv={s0}", f"dnerv={s1}", f"grid={g}"]), "psnr_rgb", "dnerv")
    by = {r["curve"]: r for r in rows}
    dn, grid = by["dnerv"], by["grid"]
    assert dn["runs"] == 2 and grid["runs"] == 1
    assert dn["points"] == [pytest.approx((0.1, 31.0)), pytest.approx((0.2, 34.0)), pytest.approx((0.4, 36.0))]
    assert dn["spread"] == pytest.approx([2.0, 2.0, 0.0])
    assert len(grid["pairs"]) == 2          # the grid's one run against each of the reference's two
    qs = sorted(d["bd_quality"] for d in grid["pairs"])
    assert qs[1] > grid["against"]["dnerv"]["bd_quality"] > qs[0]     # the mean lies between the pairings
    # geometric mean of the rates: runs at 0.1 and 0.4 bpp average to 0.2
    assert rm.mean_curve([[(0.1, 30.0)], [(0.4, 34.0)]]) == [pytest.approx((0.2, 32.0))]
    md = rm.markdown(rows, "psnr_rgb", "dnerv")
    assert "| c | dnerv (mean of 2 runs) | 0.100 -> 31.00, 0.200 -> 34.00, 0.400 -> 36.00; the runs within 2.00 dB" in md
    assert "; run against run " in md.split("| c | grid |")[1]
    assert rm.main(["--run", f"dnerv={s0}", "--run", f"dnerv={s1}", "--run", f"grid={g}", "--reference", "dnerv"]) == 0
    assert "c dnerv (mean of 2 runs)" in capsys.readouterr().out
    # two benches repeated with their own anchors: the first run's anchors, not the two interleaved
    b0 = _results(tmp_path / "b0.json", "c", [(0.1, 30.0), (0.2, 33.0), (0.4, 36.0)], HEVC)
    b1 = _results(tmp_path / "b1.json", "c", [(0.1, 31.0), (0.2, 34.0), (0.4, 37.0)], [(b, q + 0.5) for b, q in HEVC])
    assert rm.curves(rm.parse_runs([f"dnerv={b0}", f"dnerv={b1}"]), "psnr_rgb")[1] == {"c": {"hevc": HEVC}}
    short = _results(tmp_path / "short.json", "c", [(0.1, 30.0), (0.2, 33.0)])
    with pytest.raises(SystemExit, match="same number of points"):
        rm.table(rm.parse_runs([f"dnerv={s0}", f"dnerv={short}"]), "psnr_rgb", None)
