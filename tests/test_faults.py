"""Faults that used to crash or mislead, each pinned by a test that failed before the fix."""
from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, encode
from nervcodec.data import sample_path
from nervcodec.device import resolve_device
from nervcodec.errors import ConfigError, FitDivergedError, InterruptedError_
from nervcodec.model import MODEL_SPECS, model_names
from nervcodec.model.dnerv import warp


def _one_error_line(res) -> str:
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("nervcodec: error:"), res.stderr
    return lines[0]


# --------------------------------------------------------------------------- divergence


def test_non_finite_flows_never_reach_grid_sample():
    feat = torch.rand(2, 3, 6, 7, requires_grad=True)
    flow = torch.zeros(2, 2, 6, 7)
    flow[0, 0, 1, 1] = float("nan")
    flow[0, 1, 2, 2] = float("inf")
    flow[1, 0] = -float("inf")
    flow.requires_grad_(True)
    out = warp(feat, flow)
    out.sum().backward()                                   # crashed the process (SIGSEGV) before
    assert torch.isfinite(out).all() and torch.isfinite(feat.grad).all()
    # for finite flows the clamp changes nothing: border padding samples the edge either way
    big = torch.randn(2, 2, 6, 7) * 3
    big[0, 0, :2] = 1e4
    big[1, 1, 3:] = -1e5
    n, _, h, w = feat.shape
    gx = (torch.arange(w).view(1, 1, w) + big[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (torch.arange(h).view(1, h, 1) + big[:, 1]) * (2.0 / (h - 1)) - 1.0
    ref = torch.nn.functional.grid_sample(feat, torch.stack([gx, gy], -1), mode="bilinear",
                                          padding_mode="border", align_corners=True)
    assert torch.allclose(warp(feat, big), ref, atol=1e-6)


def test_diverging_dnerv_fit_is_one_line_and_leaves_no_file(tmp_path):
    out = tmp_path / "o.nerv"
    res = CliRunner().invoke(cli, ["encode", str(sample_path()), str(out), "--lr", "10", "--epochs", "5",
                                   "--device", "cpu", "-q", "--keyframe-quality", "32"])
    assert res.exit_code == FitDivergedError.exit_code, res.output
    line = _one_error_line(res)
    assert "diverged" in line and "lower --lr" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_diverging_nerv_fit_is_one_line_and_leaves_no_file(tmp_path, clip_file):
    src = clip_file(width=16, height=12, frames=4)[0]
    out = tmp_path / "o.nerv"
    res = CliRunner().invoke(cli, ["encode", str(src), str(out), "--model", "nerv", "--params", "2000",
                                   "--lr", "1e30", "--epochs", "3", "--device", "cpu", "-q"])
    assert res.exit_code == FitDivergedError.exit_code, res.output
    assert "diverged" in _one_error_line(res)
    assert not out.exists()


def test_a_nan_loss_stops_the_fit(tmp_path, clip_file, monkeypatch):
    fit_module = importlib.import_module("nervcodec.fit.fit")
    src = clip_file(width=16, height=12, frames=4)[0]
    real, calls = fit_module.batch_loss, {"n": 0}

    def loss(*a, **kw):
        calls["n"] += 1
        value, mse = real(*a, **kw)
        return (value * float("nan"), mse * float("nan")) if calls["n"] == 3 else (value, mse)

    monkeypatch.setattr(fit_module, "batch_loss", loss)
    with pytest.raises(FitDivergedError, match="non-finite loss at step"):
        encode([src], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2000, epochs=50, device="cpu"))
    assert not (tmp_path / "o.nerv").exists()


def test_a_collapse_with_a_finite_loss_stops_the_fit(tmp_path, clip_file, monkeypatch):
    """D-NeRV clamps its output, so a blown-up fit can keep a finite loss: a PSNR far below the start
    (by COLLAPSE_DB, and under COLLAPSE_FLOOR_DB) is divergence too."""
    from nervcodec.codec.fitting import build_fit_data
    from nervcodec.codec.plan import plan
    fit_module = importlib.import_module("nervcodec.fit.fit")
    src = clip_file(width=16, height=12, frames=4)[0]
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2000, epochs=20, device="cpu"))
    data = build_fit_data(p.frames, p.infos, p.layout, p.layout.items(p.infos), int(p.config.height),
                          int(p.config.width))
    real, calls = fit_module.batch_loss, {"n": 0}

    def loss(*a, **kw):
        calls["n"] += 1
        value, mse = real(*a, **kw)
        return (value, torch.full_like(mse, 0.5)) if calls["n"] >= 3 else (value, mse)   # PSNR 3 dB, finite

    monkeypatch.setattr(fit_module, "batch_loss", loss)
    torch.manual_seed(0)
    assert fit_module.COLLAPSE_STEPS == 16
    with pytest.raises(FitDivergedError, match=r"PSNR fell to 3\.[0-9]+ dB over the last 16 steps, from .* at step "
                                               r"16 of 20"):
        fit_module.fit(p.spec.cls(p.config), data, p.fit, torch.device("cpu"), refresh_seconds=0.0)

    # one bad batch is not a collapse (one step of a clip with scene cuts and fast motion can score far
    # below the clip): the window of COLLAPSE_STEPS steps averages it away, and the fit ends
    calls["n"] = 0

    def one_bad(*a, **kw):
        calls["n"] += 1
        value, mse = real(*a, **kw)
        return (value, torch.full_like(mse, 0.5)) if calls["n"] == 4 else (value, mse)

    monkeypatch.setattr(fit_module, "batch_loss", one_bad)
    res = fit_module.fit(p.spec.cls(p.config), data, p.fit, torch.device("cpu"), refresh_seconds=0.0)
    assert res.steps == 20 and calls["n"] >= 20

    # a fit shorter than the window is still judged, on its steps at the end
    monkeypatch.setattr(fit_module, "batch_loss", lambda *a, **kw: (real(*a, **kw)[0], torch.tensor(0.9)))
    short = dataclasses.replace(p.fit, epochs=5)
    torch.manual_seed(0)
    with pytest.raises(FitDivergedError, match=r"PSNR fell to 0.46 dB over the last 5 steps, from .* at step 5 of 5"):
        fit_module.fit(p.spec.cls(p.config), data, short, torch.device("cpu"), refresh_seconds=0.0)


# --------------------------------------------------------------------------- devices


def test_a_gpu_index_the_host_lacks_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="1 CUDA device"):
        resolve_device("cuda:7")
    for bad in ("mps", "meta", "cuda:x", "gpu"):
        with pytest.raises(ConfigError):
            resolve_device(bad)


def test_cuda_index_on_the_cli_is_one_line(tmp_path, clip_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    src = clip_file(width=16, height=12, frames=2)[0]
    res = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "o.nerv"), "--device", "cuda:7"])
    assert res.exit_code == ConfigError.exit_code
    assert "cuda:7" in _one_error_line(res)


def test_synthesis_runs_without_tf32(tmp_path, clip_file, monkeypatch):
    from nervcodec.codec import decode
    from nervcodec.model.nerv import NeRV
    src = clip_file(width=16, height=12, frames=3)[0]
    out = tmp_path / "o.nerv"
    encode([src], out, EncodeConfig(model="nerv", params=2000, epochs=1, device="cpu"))
    seen = []
    real = NeRV.forward

    def spy(self, *a, **kw):
        if a[0].device.type != "meta":                     # the loader's shape check runs on meta tensors
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return real(self, *a, **kw)

    monkeypatch.setattr(NeRV, "forward", spy)
    torch.backends.cudnn.allow_tf32 = True                 # cuDNN's default
    decode(out, tmp_path / "d.y4m", device="cpu")
    assert seen and all(s == (False, False) for s in seen)
    assert torch.backends.cudnn.allow_tf32 is True         # restored afterwards


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_swallowed_by_other_code_still_stops_the_fit(tmp_path, clip_file, monkeypatch):
    """SIGINT only sets a flag that the loop checks after the step; before, the KeyboardInterrupt
    could land in code that ignores exceptions (as a ``__del__`` does) and the fit went on."""
    fit_module = importlib.import_module("nervcodec.fit.fit")
    src = clip_file(width=16, height=12, frames=4)[0]
    real, calls = fit_module.batch_loss, {"n": 0}

    def loss(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):                      # give the handler time to run in here
                    pass
            except BaseException:                          # what a __del__ or a callback does
                pass
        return real(*a, **kw)

    monkeypatch.setattr(fit_module, "batch_loss", loss)
    with pytest.raises(InterruptedError_, match="nothing was written"):
        encode([src], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2000, epochs=50, device="cpu"))
    assert calls["n"] == 2                                 # the step finished, then the fit stopped
    assert not (tmp_path / "o.nerv").exists()


# --------------------------------------------------------------------------- structure


def test_decoding_imports_no_fitting_code():
    code = "import sys, nervcodec.codec.decode; assert 'nervcodec.fit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_register_on_import_and_the_cli_offers_them():
    assert set(model_names()) == {"nerv", "dnerv", "latent-grid", "latent-grid-kf"} == set(MODEL_SPECS)
    for spec in MODEL_SPECS.values():
        assert spec.batch >= 1 and spec.lr > 0 and spec.bits_per_weight(8) < 8
    enc = cli.commands["encode"]
    choices = next(p.type.choices for p in enc.params if p.name == "model")
    assert tuple(choices) == model_names()


def test_a_closed_stdout_pipe_ends_info_quietly(tmp_path, clip_file, monkeypatch):
    """`nervcodec info f.nerv | head -1` used to end in "internal error: BrokenPipeError" (exit 70)."""
    src = clip_file(width=16, height=12, frames=2)[0]
    out = tmp_path / "o.nerv"
    encode([src], out, EncodeConfig(model="nerv", params=2000, epochs=1, device="cpu"))
    import click

    def closed(*a, **kw):
        raise BrokenPipeError(32, "Broken pipe")            # what writing to a pipe whose reader left raises

    monkeypatch.setattr(click, "echo", closed)
    res = CliRunner().invoke(cli, ["info", str(out)])
    assert res.exit_code == 0 and res.stderr == ""
