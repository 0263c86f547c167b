"""Each encode stage alone (plan -> fit -> code -> write, and verify), and encode() as their composition."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from nervcodec.codec import EncodeConfig, encode
from nervcodec.codec.coding import CodedFile, code
from nervcodec.codec.encoder import write
from nervcodec.codec.fitting import FittedModel, fit_model
from nervcodec.codec.plan import EncodePlan, plan
from nervcodec.codec.verification import verify
from nervcodec.container import SECTION_KEYFRAMES, SECTION_WEIGHTS, unpack, unpack_weights
from nervcodec.errors import FitDivergedError, OutputError
from nervcodec.fit import FitResult
from nervcodec.model import model_spec

NERV = dict(model="nerv", params=2000, epochs=2, device="cpu")
DNERV = dict(model="dnerv", bpp=24.0, epochs=1, device="cpu", clip_len=2)          # keyframe quality searched
DNERV_FIXED = dict(model="dnerv", params=6000, keyframe_quality=40, epochs=1, device="cpu", clip_len=2)


@pytest.fixture
def src(clip_file):
    return clip_file(width=32, height=24, frames=5)[0]


def test_plan_sizes_the_model_and_codes_keyframes_without_writing(tmp_path, src):
    out = tmp_path / "o.nerv"
    p = plan([src], out, EncodeConfig(**DNERV))
    assert isinstance(p, EncodePlan) and not out.exists()
    spec = model_spec("dnerv")
    assert p.spec is spec and p.fit.batch == spec.batch and p.fit.lr == spec.lr   # defaults from the registry
    assert p.infos[0].num_frames == 5 and p.frames[0].num_frames == 5
    assert p.layout.clip_len == 2 and p.layout.substitute
    assert p.keyframes is not None and 0 < p.keyframe_bytes <= p.budget * 0.5   # within its share
    assert p.budget == int(24.0 * 32 * 24 * 5 / 8) and p.target_bpp == 24.0
    with pytest.raises(Exception):
        p.budget = 1                                                            # frozen


def test_plan_refuses_an_existing_output_before_reading_anything(tmp_path):
    out = tmp_path / "o.nerv"
    out.write_bytes(b"keep")
    with pytest.raises(OutputError, match="--force"):
        plan([tmp_path / "missing.y4m"], out, EncodeConfig(**NERV))
    assert out.read_bytes() == b"keep"


def test_fit_stage_returns_finite_float_weights_and_is_deterministic(tmp_path, src):
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**NERV))
    a, b = fit_model(p), fit_model(p)
    assert isinstance(a, FittedModel) and a.params == sum(v.numel() for v in a.state.values()
                                                          if v.is_floating_point())
    assert a.result.steps == 2 * -(-5 // p.fit.batch)
    for k, v in a.state.items():
        assert v.device.type == "cpu" and torch.isfinite(v).all()
        assert torch.equal(v, b.state[k])


def test_code_stage_gives_symbols_sections_and_bytes(tmp_path, src):
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**DNERV_FIXED))
    fitted = fit_model(p)
    coded = code(p, fitted)
    assert isinstance(coded, CodedFile)
    assert all(q.symbols.dtype.kind == "i" for _, q in coded.symbols)           # integers, not floats
    nf = unpack(coded.data)
    assert nf.sections == coded.sections and set(nf.sections) == {SECTION_WEIGHTS, SECTION_KEYFRAMES}
    template = {k: torch.zeros_like(v) for k, v in fitted.state.items()}
    back = unpack_weights(coded.sections[SECTION_WEIGHTS], template)
    for (name, q), (k, v) in zip(coded.symbols, ((k, v) for k, v in fitted.state.items() if v.is_floating_point())):
        assert name == k
        bound = float(np.max(q.step.astype(np.float64))) / 2 + 1e-3
        assert float((back[k] - v).abs().max()) <= bound


def test_code_stage_refuses_non_finite_weights(tmp_path, src):
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**NERV))
    fitted = fit_model(p)
    state = dict(fitted.state)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    with pytest.raises(FitDivergedError, match="lower --lr"):
        code(p, FittedModel(state, fitted.params, fitted.result))


def test_write_stage_writes_the_bytes_with_the_umask(tmp_path, src):
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**NERV))
    coded = code(p, fit_model(p))
    old = os.umask(0o022)
    try:
        size = write(p, coded)
    finally:
        os.umask(old)
    assert size == len(coded.data) == p.output.stat().st_size
    assert p.output.read_bytes() == coded.data
    assert stat.S_IMODE(p.output.stat().st_mode) == 0o644      # like any other file, not mkstemp's 0600


def test_encode_is_the_composition_of_the_stages(tmp_path, src):
    res = encode([src], tmp_path / "e.nerv", EncodeConfig(**DNERV_FIXED))
    p = plan([src], tmp_path / "s.nerv", EncodeConfig(**DNERV_FIXED))
    coded = code(p, fit_model(p))
    write(p, coded)
    assert (tmp_path / "e.nerv").read_bytes() == (tmp_path / "s.nerv").read_bytes()
    assert res.psnr == coded.psnr and res.bytes == len(coded.data)


def test_verify_stage_measures_the_decoded_file(tmp_path, src):
    out = tmp_path / "v.nerv"
    res = encode([src], out, EncodeConfig(**NERV, verify=True))
    assert res.verify is not None and res.verify.frames == 5
    assert res.verify.psnr_yuv == pytest.approx(res.psnr, abs=1e-6)   # what encode reports is what decodes
    again = verify(out, [src], device="cpu")
    assert again.psnr_yuv == pytest.approx(res.psnr, abs=1e-6)
    assert res.to_dict()["verify"]["psnr_rgb"] == again.psnr_rgb


def test_quality_warning_when_the_fit_ends_below_its_start(tmp_path, src, monkeypatch):
    from nervcodec.codec import fitting
    from nervcodec.errors import NervCodecWarning
    monkeypatch.setattr(fitting, "fit", lambda *a, **k: FitResult(3, 0.1, final_psnr=18.0, start_psnr=22.0))
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**DNERV_FIXED))
    with pytest.warns(NervCodecWarning, match="below the keyframe cross-fade"):
        fitted = fit_model(p)
    assert len(fitted.warnings) == 1
    monkeypatch.setattr(fitting, "fit", lambda *a, **k: FitResult(3, 0.1, final_psnr=21.5, start_psnr=22.0))
    assert fit_model(p).warnings == ()                                   # within the margin: no warning


@pytest.mark.parametrize("kw", [NERV, DNERV_FIXED, dict(model="latent-grid", bpp=8.0, steps=2, device="cpu")],
                         ids=["nerv", "dnerv", "latent-grid"])
def test_the_decoders_network_is_the_weights_section_alone(tmp_path, src, kw):
    """build_network makes the network's shapes without initialising anything (no random draws, no zeros
    to overwrite) and takes the dequantized tensors as its parameters."""
    from nervcodec.codec.decode import build_network
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**kw))
    fitted = fit_model(p)
    coded = code(p, fitted)
    want = unpack_weights(coded.sections[SECTION_WEIGHTS], {k: torch.zeros_like(v) for k, v in fitted.state.items()})
    rng = torch.get_rng_state()
    net = build_network(p.spec, p.config, coded.sections[SECTION_WEIGHTS])
    assert torch.equal(torch.get_rng_state(), rng)                  # nothing was initialised at random
    state = net.state_dict()
    assert set(state) == set(want)
    for k, v in state.items():
        assert v.device.type == "cpu" and v.dtype == torch.float32 and torch.equal(v, want[k])


def test_a_network_tensor_the_weights_section_does_not_hold_is_a_format_error(tmp_path, src):
    """A state entry that is not a coded float tensor (none in today's models) would stay shapes-only on the
    meta device: the decoder says so instead of computing with it."""
    import dataclasses

    from nervcodec.codec.decode import build_network
    from nervcodec.errors import FormatError
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(**NERV))
    coded = code(p, fit_model(p))

    class WithCounter(p.spec.cls):
        def __init__(self, config):
            super().__init__(config)
            self.register_buffer("calls", torch.zeros((), dtype=torch.long))
    with pytest.raises(FormatError, match="calls"):
        build_network(dataclasses.replace(p.spec, cls=WithCounter), p.config, coded.sections[SECTION_WEIGHTS])
