"""D-NeRV model: shapes, size planning, config round trip, warp, output range, gradients, determinism."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from nervcodec.errors import ConfigError
from nervcodec.model.base import config_from_dict, config_to_dict, model_spec, model_spec_by_id
from nervcodec.model.dnerv import (DNeRV, DNeRVConfig, dnerv_param_count, plan_dnerv, straight_through_clamp,
                                   warp)

torch.set_num_threads(1)


def _inputs(cfg: DNeRVConfig, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, cfg.clip_len, generator=g)
    kf = torch.rand(b, 2, cfg.channels, cfg.height, cfg.width, generator=g)
    return t, kf


def _small(height: int, width: int, channels: int = 3, params: int = 20_000, clip_len: int = 8) -> DNeRV:
    torch.manual_seed(0)
    return DNeRV(plan_dnerv(height, width, channels, params, clip_len=clip_len))


@pytest.mark.parametrize("height,width,channels,clip_len", [
    (144, 176, 3, 8),
    (64, 80, 1, 8),
    (64, 80, 3, 4),
    (37, 53, 1, 4),      # planned working size (40x56) is larger than the frame
])
def test_output_shape_and_range(height, width, channels, clip_len):
    model = _small(height, width, channels, clip_len=clip_len)
    cfg = model.config
    assert cfg.height >= height and cfg.width >= width
    assert model.clip_len == clip_len and model.needs_keyframes
    t, kf = _inputs(cfg, b=2)
    with torch.no_grad():
        out = model(t, kf)
    assert out.shape == (2, clip_len, channels, cfg.height, cfg.width)
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_working_size_from_geometry():
    cfg = plan_dnerv(144, 176, 3, 50_000)
    assert (cfg.height, cfg.width, cfg.grid_h, cfg.grid_w, cfg.factors) == (144, 176, 9, 11, (2, 2, 2, 2))
    cfg = plan_dnerv(256, 320, 3, 1_000_000)
    assert (cfg.grid_h, cfg.grid_w, cfg.factors) == (4, 5, (4, 2, 2, 2, 2))


@pytest.mark.parametrize("height,width,channels", [(144, 176, 3), (144, 176, 1), (256, 320, 3), (1080, 1920, 3)])
@pytest.mark.parametrize("params", [20_000, 45_000, 300_000, 3_000_000, 50_000_000])
def test_planner_hits_budget(height, width, channels, params):
    cfg = plan_dnerv(height, width, channels, params)
    n = dnerv_param_count(cfg)
    assert abs(n - params) <= 0.03 * params


@pytest.mark.parametrize("params", [20_000, 60_000, 500_000, 5_000_000])
def test_param_count_matches_network(params):
    cfg = plan_dnerv(144, 176, 3, params)
    with torch.device("meta"):
        model = DNeRV(cfg)
    assert model.num_params() == dnerv_param_count(cfg)


def test_planner_widths_grow_with_budget():
    small, large = plan_dnerv(144, 176, 3, 40_000), plan_dnerv(144, 176, 3, 4_000_000)
    for f in ("fc_dim", "stem_dim", "enc_dim", "lower_width"):
        assert getattr(small, f) <= getattr(large, f)
    assert small.fc_dim < large.fc_dim


def test_planner_rejects_impossible_budget():
    with pytest.raises(ConfigError):
        plan_dnerv(144, 176, 3, 500)


def test_config_round_trip_rebuilds_identical_network():
    cfg = plan_dnerv(144, 176, 1, 60_000, clip_len=4, embed_levels=32)
    data = config_to_dict(cfg)
    assert all(isinstance(v, (int, float, list)) for v in data.values())
    back = config_from_dict(DNeRVConfig, data)
    assert back == cfg
    torch.manual_seed(1)
    a = DNeRV(cfg).state_dict()
    b = DNeRV(back).state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)


def test_registry():
    spec = model_spec("dnerv")
    assert spec.arch_id == 2 and spec.cls is DNeRV and spec.config_cls is DNeRVConfig
    assert model_spec_by_id(2) is spec


def test_invalid_config_rejected():
    cfg = plan_dnerv(64, 80, 3, 20_000)
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, height=cfg.height + 1)
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, channels=2)


def test_zero_flow_warp_is_identity():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(3, 5, 7, 9, generator=g)
    out = warp(feat, torch.zeros(3, 2, 7, 9))
    torch.testing.assert_close(out, feat, atol=1e-5, rtol=0)


def test_warp_integer_shift():
    feat = torch.arange(4 * 6, dtype=torch.float32).view(1, 1, 4, 6)
    flow = torch.zeros(1, 2, 4, 6)
    flow[:, 0] = 1.0                       # sample one pixel to the right
    out = warp(feat, flow)
    torch.testing.assert_close(out[..., :-1], feat[..., 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., -1], feat[..., -1], atol=1e-5, rtol=0)   # border padding


def test_untrained_model_outputs_keyframe_blend():
    """Flow heads and the output head start near zero, so the output starts near the keyframe cross-fade."""
    model = _small(64, 80, 3)
    cfg = model.config
    t, kf = _inputs(cfg, b=1)
    with torch.no_grad():
        out = model(t, kf)
    tau = torch.arange(cfg.clip_len).float().div(cfg.clip_len).view(1, -1, 1, 1, 1)
    blend = kf[:, 0:1] * (1 - tau) + kf[:, 1:2] * tau
    assert (out - blend).abs().mean() < 0.02


def test_straight_through_clamp():
    x = torch.tensor([-0.5, 0.3, 1.5], requires_grad=True)
    y = straight_through_clamp(x)
    assert y.tolist() == pytest.approx([0.0, 0.3, 1.0])
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_gradients_reach_every_parameter():
    model = _small(64, 80, 3)
    t, kf = _inputs(model.config, b=2)
    target = torch.rand(2, model.config.clip_len, 3, model.config.height, model.config.width)
    loss = (model(t, kf) - target).pow(2).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_deterministic_on_cpu():
    outs = []
    for _ in range(2):
        model = _small(64, 80, 1)
        t, kf = _inputs(model.config, b=2, seed=3)
        with torch.no_grad():
            outs.append(model(t, kf))
    assert torch.equal(outs[0], outs[1])


def test_bf16_autocast_cpu():
    model = _small(64, 80, 3)
    t, kf = _inputs(model.config, b=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(t, kf)
    assert out.dtype == torch.float32
    assert out.shape == (1, model.config.clip_len, 3, model.config.height, model.config.width)
    assert out.min() >= 0.0 and out.max() <= 1.0
    out.mean().backward()


def test_wrong_clip_length_rejected():
    model = _small(64, 80, 3)
    t, kf = _inputs(model.config, b=1)
    with pytest.raises(ValueError):
        model(t[:, :4], kf)
