"""Tests of benchmarks/rate_trace.py: the rate phase's trace, and a file identical to an untraced encode's."""
from __future__ import annotations

import importlib
import json

import pytest

from conftest import load_benchmark, write_moving_clip
from nervcodec.codec import EncodeConfig, encode
from nervcodec.quant import qat

fit_module = importlib.import_module("nervcodec.fit.fit")


@pytest.fixture(scope="module")
def rt():
    return load_benchmark("rate_trace")


def test_the_trace_reads_the_rate_phase_without_changing_the_file(rt, tmp_path):
    src = write_moving_clip(tmp_path / "m.y4m", width=32, height=24, frames=9)
    cfg = EncodeConfig(model="latent-grid-kf", bpp=4.0, steps=30, seed=3, device="cpu", clip_len=4,
                       keyframe_codec="hevc")
    plain = tmp_path / "plain.nerv"
    encode([src], plain, cfg)
    originals = (qat.RateTerm.after_step, fit_module.batch_loss)
    traced = tmp_path / "traced.nerv"
    lines = []
    with rt.tracing(5, lines.append, maps=True):
        encode([src], traced, cfg)
    assert (qat.RateTerm.after_step, fit_module.batch_loss) == originals          # put back
    assert traced.read_bytes() == plain.read_bytes()                            # only read, never drew
    assert [ln["rate_step"] for ln in lines][:3] == [1, 6, 11] and len(lines) >= 5
    last = lines[-1]
    assert last["target_bits"] > 0 and last["steps"][0] <= last["steps"][1] <= last["steps"][2]
    assert 5 < last["fit_psnr"] < 80 and last["estimate_bits"] > 0 and last["coded_ratio"] > 0
    assert last["maps"] and all(0 <= m["nonzero"] <= 1 and m["step"] > 0 for m in last["maps"].values())


def test_the_script_prints_json_lines_and_the_result(rt, tmp_path, capsys):
    src = write_moving_clip(tmp_path / "m.y4m", width=32, height=24, frames=9)
    out = tmp_path / "o.nerv"
    assert rt.main([str(src), str(out), "--model", "latent-grid", "--bpp", "2", "--steps", "20", "--every", "10"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [ln["rate_step"] for ln in lines[:-1]] == [1, 11]
    assert lines[-1]["bytes"] == out.stat().st_size and lines[-1]["bpp"] > 0
    with pytest.raises(SystemExit):
        rt.main([str(src), str(out), "--every", "0"])
