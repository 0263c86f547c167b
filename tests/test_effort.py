"""Effort presets (--preset ultrafast..veryslow = a budget of optimizer steps), --steps, the rate presets'
new name (--rate-preset) and the message for their old spelling."""
from __future__ import annotations


import pytest
import torch
from click.testing import CliRunner

from nervcodec.bench.runner import BenchConfig
from nervcodec.cli import cli
from nervcodec.codec import EFFORT_PRESETS, RATE_PRESETS, EncodeConfig, encode
from nervcodec.codec.plan import plan
from nervcodec.errors import ConfigError, InterruptedError_
from nervcodec.fit import FitConfig, fit

from conftest import interrupt_at, tiny_fit_data, tiny_nerv



def test_effort_presets_are_x264_names_with_growing_step_budgets():
    assert list(EFFORT_PRESETS) == ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                    "slower", "veryslow"]
    steps = list(EFFORT_PRESETS.values())
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert EncodeConfig().preset == "medium"


@pytest.mark.parametrize("name", ["tiny", "small", "large", "xlarge"])
def test_old_rate_spelling_of_preset_says_where_it_went(name):
    with pytest.raises(ConfigError, match=f"--rate-preset {name}") as exc:
        EncodeConfig(preset=name)
    assert f"{RATE_PRESETS[name]:g} bpp" in str(exc.value) and "effort" in str(exc.value)


def test_unknown_preset_and_conflicting_lengths_are_refused():
    with pytest.raises(ConfigError, match="unknown preset 'warp'"):
        EncodeConfig(preset="warp")
    with pytest.raises(ConfigError, match="only one of --epochs and --steps"):
        EncodeConfig(epochs=3, steps=10)
    with pytest.raises(ConfigError, match="--steps must be at least 1"):
        EncodeConfig(steps=0)
    with pytest.raises(ConfigError, match="only one of --params, --bpp, --rate-preset"):
        EncodeConfig(bpp=0.3, rate_preset="small")
    with pytest.raises(ConfigError, match="unknown rate preset"):
        EncodeConfig(rate_preset="huge")


def test_rate_preset_sets_the_target_rate():
    assert EncodeConfig(rate_preset="small").target_bpp == 0.1
    assert EncodeConfig().target_bpp == RATE_PRESETS["medium"]
    assert EncodeConfig(params=100).target_bpp is None
    assert EncodeConfig(bpp=0.7).target_bpp == 0.7


@pytest.fixture
def src(clip_file):
    return clip_file(width=32, height=24, frames=5)[0]


@pytest.mark.parametrize("kw, steps, effort", [
    (dict(), EFFORT_PRESETS["medium"], "preset medium"),
    (dict(preset="ultrafast"), EFFORT_PRESETS["ultrafast"], "preset ultrafast"),
    (dict(preset="veryslow"), EFFORT_PRESETS["veryslow"], "preset veryslow"),
    (dict(steps=17), 17, "--steps 17"),
    (dict(epochs=3), None, "--epochs 3"),
])
def test_plan_turns_the_effort_into_a_step_budget(tmp_path, src, kw, steps, effort):
    cfg = EncodeConfig(model="nerv", params=2000, device="cpu", **kw)
    p = plan([src], tmp_path / "o.nerv", cfg)
    assert p.fit.steps == steps and cfg.effort == effort
    per_epoch = -(-5 // p.fit.batch)
    assert p.fit.total_steps(per_epoch) == (steps if steps is not None else 3 * per_epoch)


@pytest.mark.parametrize("clip_len", [8, 4, 2, 16])
def test_a_preset_is_the_same_steps_whatever_the_keyframe_interval(tmp_path, src, clip_len):
    """A preset counts steps, not frames: the same budget whatever the clip length (a D-NeRV step of 4
    frames costs about what one of 8 does with small networks, 55-65 % of it with large ones)."""
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(params=7000, clip_len=clip_len, device="cpu"))
    assert p.layout.clip_len == clip_len and p.fit.steps == EFFORT_PRESETS["medium"]


def test_fit_runs_exactly_the_step_budget_ending_inside_an_epoch():
    res = fit(tiny_nerv(), tiny_fit_data(n=4), FitConfig(steps=7, batch=3), torch.device("cpu"))
    assert res.steps == 7                              # 2 steps per epoch: 3 whole epochs and one step
    assert res.epochs == pytest.approx(3.5) and res.final_psnr == res.final_psnr


def test_a_step_budget_of_whole_epochs_equals_the_same_epochs():
    a, b = tiny_nerv(), tiny_nerv()
    ra = fit(a, tiny_fit_data(n=4), FitConfig(steps=6, batch=2), torch.device("cpu"))
    rb = fit(b, tiny_fit_data(n=4), FitConfig(epochs=3, batch=2), torch.device("cpu"))
    assert ra.steps == rb.steps == 6 and ra.final_psnr == rb.final_psnr
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_encode_reports_its_effort_and_steps(tmp_path, src):
    res = encode([src], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2000, device="cpu", steps=7))
    assert res.steps == 7 and res.effort == "--steps 7"
    assert res.epochs == pytest.approx(7 / -(-5 // 4), abs=0.01)   # NeRV: 4 frames per step by default
    assert res.to_dict()["effort"] == "--steps 7"


def test_resume_inside_the_last_partial_epoch_is_bit_identical(tmp_path, src, monkeypatch):
    cfg = dict(model="nerv", params=2000, steps=8, batch=2, device="cpu", seed=3, force=True)  # 3 per epoch
    ref = tmp_path / "ref.nerv"
    encode([src], ref, EncodeConfig(**cfg))
    out, ck = tmp_path / "out.nerv", tmp_path / "fit.ckpt"
    with monkeypatch.context() as m:
        interrupt_at(m, 7)                      # first step of the last (partial) epoch
        with pytest.raises(InterruptedError_):
            encode([src], out, EncodeConfig(**cfg, checkpoint=str(ck), checkpoint_seconds=1e9))
    encode([src], out, EncodeConfig(**cfg, checkpoint=str(ck), resume=True))
    assert out.read_bytes() == ref.read_bytes()


def test_cli_preset_old_spelling_is_one_line_and_rate_preset_works(tmp_path, src, clip_file):
    r = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "o.nerv"), "--preset", "small"])
    assert r.exit_code != 0 and "--rate-preset small" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "o.nerv").exists()
    r = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "o.nerv"), "--model", "nerv",
                                 "--rate-preset", "tiny", "--device", "cpu"])
    assert r.exit_code == 4 and "--rate-preset tiny (0.05 bpp) leaves" in r.output   # the too-low-rate message
    big = clip_file("big", width=96, height=64, frames=8)[0]
    r = CliRunner().invoke(cli, ["encode", str(big), str(tmp_path / "o.nerv"), "--model", "nerv",
                                 "--rate-preset", "xlarge", "--steps", "3", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    import json
    out = json.loads(r.output)
    assert out["target_bpp"] == RATE_PRESETS["xlarge"] and out["steps"] == 3 and out["effort"] == "--steps 3"


def test_cli_progress_names_the_effort(tmp_path, src):
    r = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "o.nerv"), "--model", "nerv", "--params",
                                 "2000", "--preset", "ultrafast", "--steps", "4", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "--steps 4: 4 optimizer steps" in r.output


def test_bench_uses_its_preset_for_nervcodec_unless_told_otherwise():
    assert BenchConfig(preset="slow").nerv_effort == "slow"
    assert BenchConfig(preset="placebo", nerv_preset="fast").nerv_effort == "fast"
    with pytest.raises(ConfigError, match="--nerv-preset"):
        BenchConfig(preset="placebo")
    BenchConfig(preset="placebo", nerv=False)            # the baselines alone: fine
    BenchConfig(preset="placebo", epochs=3)              # nervcodec's length given: fine
    assert BenchConfig(epochs=3).describe()["nervcodec"]["effort"] == "--epochs 3"
    assert BenchConfig().describe()["nervcodec"]["effort"] == "preset medium"
