"""The latent-grid model: its grids, their coding, random access, determinism and a quality floor."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from nervcodec.bytesio import Reader
from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, encode
from nervcodec.codec.coding import code, quantized_state
from nervcodec.codec.fitting import fit_model
from nervcodec.codec.plan import plan
from nervcodec.container import read_file
from nervcodec.container.nervfile import SECTION_WEIGHTS
from nervcodec.container.weights import pack_weights, unpack_weights
from nervcodec.entropy import decode_symbols, encode_symbols
from nervcodec.errors import ConfigError
from nervcodec.io import read_video, write_video
from nervcodec.model import build_model, model_spec
from nervcodec.model.base import VideoModel
from nervcodec.model.grid import (LATENT_PREFIXES, KeyedGridConfig, KeyedLatentGrid, LatentGrid, LatentGridConfig,
                                  latent_grid_param_count, plan_latent_grid)
from nervcodec.quant import dequantize_tensor
from nervcodec.fit.data import PLANE_WEIGHTS, FitData
from nervcodec.fit.fit import curvature
from nervcodec.quant.qat import RateTerm, RateTermConfig, histogram_bits, latent_weights

from conftest import (assert_ranges_equal_the_full_decode, decoded_psnr_yuv, decodes_with_threads_and_batches,
                      encode_moving, interrupt_at, make_moving_clip)

FLOOR_DB = 23.0   # the NeRV floor of test_quality_floor.py, on the same clip


def _tiny_config(**kw) -> LatentGridConfig:
    base = dict(height=12, width=20, channels=3, frames=7, group=3, levels=3, hidden=(4,), refine=1)
    base.update(kw)
    return LatentGridConfig(**base)


def _enc(src, out, **kw):
    cfg = dict(model="latent-grid", bpp=2.0, steps=40, device="cpu", gop=4)
    cfg.update(kw)
    return encode([src], out, EncodeConfig(**cfg))


# ----------------------------------------------------------------------------------------- the model

def test_plan_sizes_levels_and_groups_from_the_video():
    c = plan_latent_grid(144, 176, 3, 12345, frames=48, group=16)
    assert (c.height, c.width, c.frames, c.group, c.groups) == (144, 176, 48, 16, 3)
    assert c.levels == 7 and c.level_size(6) == (3, 3)     # 144 / 64 -> 3 latents on the short side
    m = LatentGrid(c)
    assert m.num_params() == latent_grid_param_count(c)
    assert tuple(m.frame0.shape) == (48, 144, 176) and tuple(m.group6.shape) == (4, 3, 3)
    assert plan_latent_grid(144, 176, 3, 1, frames=5, group=16).group == 5   # a group never exceeds the video


def test_forward_shapes_and_frame_lookup():
    torch.manual_seed(0)
    m = LatentGrid(_tiny_config())
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    t = torch.tensor([[f / 7] for f in range(7)], dtype=torch.float32)
    with torch.no_grad():             # the decoder's path throughout (the fit's differs in float rounding)
        out = m(t)
    assert out.shape == (7, 1, 3, 12, 20) and float(out.min()) >= 0 and float(out.max()) <= 1
    # frame f depends on its own frame maps and its group's boundary maps only
    with torch.no_grad():
        m.frame0[3].add_(1.0)         # frame 3's map
        m.group0[0].add_(1.0)         # the first boundary: used by group 0 (frames 0-2) only
        after = m(t).detach()
    changed = [f for f in range(7) if not torch.equal(out[f], after[f])]
    assert changed == [0, 1, 2, 3]
    with torch.no_grad():
        m.still1.add_(1.0)            # the still maps: every frame
        last = m(t).detach()
    assert all(not torch.equal(after[f], last[f]) for f in range(7))


@pytest.mark.parametrize("keyed", [False, True, "motion"])
@pytest.mark.parametrize("piece", [1 << 15, 45, "batch"])   # whole frames, pieces of 45 pixels, the whole batch
@pytest.mark.parametrize("hidden", [(4,), (5, 3, 4)])        # one hidden layer; three (the middle ones' buffers)
def test_the_decoders_synthesis_is_the_fits_up_to_rounding(monkeypatch, keyed, piece, hidden):
    """Decoding upsamples each level by two matrix products, folds the gain into the first layer and runs
    the per-pixel network channels-first, in pieces of a frame on a CPU and over the whole batch at once
    elsewhere ("batch": that path, on the CPU): the fit's function (its path under autograd)."""
    from nervcodec.model import grid
    if piece == "batch":
        monkeypatch.setattr(grid, "decode_pieces", lambda device, frames, pixels: (frames, pixels))
    else:
        monkeypatch.setattr(grid, "DECODE_PIECE", piece)
    torch.manual_seed(1)
    cfg = _tiny_config(frames=9, group=4, hidden=hidden)
    if keyed:
        cfg = KeyedGridConfig(**{**cfg.__dict__, "clip_len": 3, "motion": keyed == "motion"})
    m = (KeyedLatentGrid if keyed else LatentGrid)(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    t = torch.tensor([[0, 1 / 9, 2 / 9], [3 / 9, 4 / 9, 5 / 9], [6 / 9, 7 / 9, 8 / 9]])
    kf = torch.rand(3, 2, 3, 12, 20) if keyed else None
    for phase, slots in ((0.0, None), (0.0, [1, 2]), (0.5, None)):
        tp = t + phase / 9
        fit = m(tp, kf, phase, slots=slots)                 # autograd on: the fit's path
        assert fit.requires_grad
        with torch.no_grad():
            dec = m(tp, kf, phase, slots=slots)
        assert dec.shape == fit.shape and float((dec - fit.detach()).abs().max()) < 1e-5
        assert float((fit.detach() - 0.5).abs().max()) > 0.1     # not a flat picture: the maps matter
    with torch.autocast("cpu", dtype=torch.bfloat16):            # the same output type under autocast
        fit = m(t, kf)
        with torch.no_grad():
            dec = m(t, kf)
    assert dec.dtype == fit.dtype and float((dec.float() - fit.detach().float()).abs().max()) < 0.05
    with torch.no_grad():                                        # an empty batch: an empty output
        assert m(t[:0], kf[:0] if keyed else None).shape == (0, 3, 3, 12, 20)


def test_the_decoders_warp_is_the_fits_up_to_rounding():
    """Without autograd the warp builds its sampling grid in one pass from cached pixel centres, and takes the
    two fields of a frame as one (N, 2, 2, H, W) view of the network's output: the same sampling positions
    as the fit's formula, so the same pictures to float rounding, and exactly the pictures where the flow is
    zero."""
    from nervcodec.model.grid import warp
    torch.manual_seed(3)
    pictures = torch.rand(6, 3, 9, 13)
    flow = torch.randn(3, 4, 9, 13) * 1.5                       # (frames, 2 fields x (x, y), H, W)
    fit = warp(pictures, flow.reshape(6, 2, 9, 13).requires_grad_(True))
    with torch.no_grad():
        dec = warp(pictures, flow.unflatten(1, (2, 2)))
        still = warp(pictures, torch.zeros(3, 2, 2, 9, 13))
    assert dec.shape == fit.shape and float((dec - fit.detach()).abs().max()) < 1e-5
    assert float((fit.detach() - pictures).abs().max()) > 0.1    # the flow moved them
    assert torch.allclose(still, pictures, atol=1e-6)


def test_a_decoding_span_computes_the_shared_maps_terms_once_and_forgets_them_after(monkeypatch):
    """The decoder's first layer takes what frames share (the still maps, each group boundary's maps) as
    precomputed terms: inside ``decoding()`` each is computed once for all the calls, the output is the
    same as outside it, and a change of the parameters after the span is seen."""
    torch.manual_seed(2)
    m = LatentGrid(_tiny_config(frames=9, group=4))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    t = torch.arange(9, dtype=torch.float32).view(9, 1) / 9
    made = []
    upsampled = LatentGrid._upsampled
    monkeypatch.setattr(LatentGrid, "_upsampled", lambda self, low, level: made.append(low.dim()) or upsampled(self, low, level))
    with torch.no_grad():
        plain = m(t)
        per_call = made.count(2)                     # shared maps (2-D) upsampled by one call outside a span
        assert per_call == 3 * 5                     # the still maps and boundaries 0-3 (groups 0-2), 3 levels
        made.clear()
        with m.decoding():
            parts = [m(t[:4]), m(t[4:]), m(t)]       # batches as a decoder makes them, then all again
            assert made.count(2) == per_call         # each shared term once for the whole span
        assert m._shared is None
        assert torch.equal(torch.cat(parts[:2]), plain) and torch.equal(parts[2], plain)
        m.still0.add_(1.0)
        assert not torch.equal(m(t), plain)          # nothing kept past the span


def test_decode_pieces_are_cache_sized_on_a_cpu_and_whole_batches_elsewhere():
    from nervcodec.model.grid import DECODE_PIECE, decode_pieces
    cpu, gpu = torch.device("cpu"), torch.device("cuda")      # a device object only: nothing runs on it
    assert decode_pieces(cpu, 8, 12 * 20) == (1, 12 * 20)                    # a small frame is one piece
    assert decode_pieces(cpu, 8, 1080 * 1920) == (1, DECODE_PIECE)           # larger ones: pieces of a frame
    assert decode_pieces(gpu, 8, 1080 * 1920) == (8, 1080 * 1920)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size,out", [(72, 144), (5, 144), (3, 176), (9, 144), (1, 12), (7, 7), (75, 149)])
def test_the_decoders_resize_matrices_are_interpolates_weights(mode, size, out):
    """Each level's upsampling in the decoder is R_h @ Z @ R_w.T: F.interpolate's result up to float
    rounding (of the sums, and of the sample positions, which PyTorch's kernel may compute with a fused
    multiply-add), at exact and fractional scales (ceil-divided level sizes) and at the borders."""
    from nervcodec.model.grid import resize_matrix
    torch.manual_seed(0)
    z = torch.randn(4, size, size + 3)
    ref = F.interpolate(z[None], size=(out, out + 5), mode=mode, align_corners=False)[0]
    mine = resize_matrix(size, out, mode) @ z @ resize_matrix(size + 3, out + 5, mode).T
    assert mine.shape == ref.shape and float((mine - ref).abs().max()) < 5e-5
    assert torch.allclose(resize_matrix(size, out, mode).sum(dim=1), torch.ones(out))   # weights sum to one


def test_frames_between_frames_blend_the_neighbours_maps():
    m = LatentGrid(_tiny_config(levels=1, refine=0, gain=1.0))
    with torch.no_grad():
        m.frame0.copy_(torch.arange(7.0)[:, None, None].expand(7, 12, 20))
    z = m.latents(torch.tensor([2 / 7, 2.5 / 7]))
    assert torch.allclose(z[0, 0], torch.full((12, 20), 2.0)) and torch.allclose(z[1, 0], torch.full((12, 20), 2.5))


# ----------------------------------------------------------------------------------------- coding

def test_latent_symbols_round_trip_exactly():
    rng = np.random.default_rng(0)
    q = np.where(rng.random((5, 30, 40)) < 0.93, 0, rng.integers(-9, 10, (5, 30, 40)))
    blob = encode_symbols(q, signed=True)
    assert np.array_equal(decode_symbols(Reader(blob, "latents"), q.size, signed=True).reshape(q.shape), q)
    # mostly zeros: the histogram model wins and costs what histogram_bits says, within a few bytes
    assert blob[0] in (1, 2) and abs(len(blob) * 8 - histogram_bits(torch.from_numpy(q))) < 8 * 24


def test_a_fitted_models_weights_section_decodes_to_its_symbols(tmp_path):
    info, frames = make_moving_clip(width=32, height=24, frames=6)
    src = tmp_path / "m.y4m"
    write_video(src, info, frames)
    p = plan([src], tmp_path / "m.nerv", EncodeConfig(model="latent-grid", bpp=4.0, steps=30, device="cpu", gop=3))
    fitted = fit_model(p)
    coded = code(p, fitted)
    got = unpack_weights(coded.sections[SECTION_WEIGHTS], fitted.state)
    assert [k for k, _ in coded.symbols] == [k for k, v in fitted.state.items() if v.is_floating_point()]
    for name, qt in coded.symbols:
        assert torch.equal(got[name], dequantize_tensor(qt)), name


def test_golden_bytes_of_a_tiny_models_weights_section():
    """The section of a fixed tiny model, quantized with fixed steps: pins the layout of the model's
    tensors (names, order, shapes) and their coding; any change here breaks existing files."""
    m = LatentGrid(_tiny_config())
    state = {}
    for k, (name, p) in enumerate(m.state_dict().items()):   # integer arithmetic only: the same everywhere
        i = np.arange(p.numel(), dtype=np.int64) + 1000 * k
        v = ((i * 2654435761) % 2001 - 1000).astype(np.float32) / 1000.0            # in [-1, 1]
        v = v * (0.08 if name.startswith(("frame", "group", "still")) else 0.3)
        if name.startswith("frame"):
            v[np.abs(v) < 0.06] = 0.0                                                  # mostly zeros
        state[name] = torch.from_numpy(v.reshape(p.shape))
    steps = {k: np.array([0.03125 if k.startswith(("frame", "group", "still")) else 0.0078125], np.float16)
             for k in state}
    section = pack_weights(quantized_state(state, steps, None))
    assert [k for k in state][:6] == ["frame0", "group0", "still0", "frame1", "group1", "still1"]
    assert len(section) == 1180
    assert hashlib.sha256(section).hexdigest() == GOLDEN_SECTION_SHA256


def test_a_file_whose_latents_are_all_zero_decodes_and_says_so(tmp_path):
    """Latent maps that are all zero cost a few bytes however large they are: the decoder's check that a
    file's model is plausible for its weights section holds the network to it, not the latents (bikes at
    0.02 bpp: 62M latents, all zero, in a section of 175 bytes was refused as damaged); and the encoder
    warns when such a file leaves its budget unspent (the bikes files were written in silence)."""
    import dataclasses
    import warnings

    from nervcodec.codec.fitting import FittedModel
    from nervcodec.errors import NervCodecWarning
    info, frames = make_moving_clip(width=64, height=48, frames=200)
    src = tmp_path / "long.y4m"
    write_video(src, info, frames)
    p = plan([src], tmp_path / "z.nerv", EncodeConfig(model="latent-grid", bpp=1.0, steps=1, device="cpu"))
    state = {k: torch.zeros_like(v) for k, v in build_model("latent-grid", p.config).state_dict().items()}
    n = sum(v.numel() for v in state.values())
    zero = FittedModel(state, n, None, steps={k: np.array([0.01], np.float16) for k in state})
    with pytest.warns(NervCodecWarning, match="of its 1 bpp budget, and its network"):
        coded = code(p, zero)
    assert "found the network worth less than its bytes" in coded.warnings[0] and "--preset" in coded.warnings[0]
    assert "coded again" not in coded.warnings[0] and not coded.keyframes_recoded   # it has no keyframes
    assert len(coded.data) < 0.9 * p.budget
    section = coded.sections[SECTION_WEIGHTS]
    assert n > 64 * (4 * len(section) * 8 + 4096)        # what the check held every parameter to
    (tmp_path / "z.nerv").write_bytes(coded.data)
    n_frames, psnr = decoded_psnr_yuv(tmp_path / "z.nerv", tmp_path / "z.y4m", frames)
    assert n_frames == 200 and psnr == pytest.approx(coded.psnr, abs=1e-9)
    with warnings.catch_warnings():     # no budget (--lambda, --params): nothing to say
        warnings.simplefilter("error", NervCodecWarning)
        assert code(dataclasses.replace(p, budget=None), zero).warnings == ()


GOLDEN_SECTION_SHA256 = "2991dffafa8387061d9c7d725b4d0a0d9339ad0db2df15093b560353e819135a"


# ----------------------------------------------------------------------------------------- the codec

@pytest.fixture(scope="module")
def coded_moving(tmp_path_factory):
    return encode_moving(tmp_path_factory.mktemp("grid"), "m", model="latent-grid", bpp=2.0, steps=40,
                         device="cpu", gop=4)


def test_encoder_psnr_is_what_decode_produces_and_the_rate_is_the_file(coded_moving):
    d, src, out, res, frames = coded_moving
    assert res.bytes == out.stat().st_size and res.model == "latent-grid"
    n, psnr = decoded_psnr_yuv(out, d / "full.y4m", frames)
    assert n == 11 and psnr == pytest.approx(res.psnr, abs=1e-9)


def test_random_access_per_group_equals_the_full_decode(coded_moving):
    d, _, out, _, _ = coded_moving
    assert_ranges_equal_the_full_decode(out, d, {"4:8": (4, 8), "8:11": (8, 11), "5": (5, 6)})   # groups of 4


def test_decode_is_identical_with_1_and_4_threads_and_any_batch(coded_moving):
    d, _, out, _, _ = coded_moving
    outputs = decodes_with_threads_and_batches(out, d, ((1, 8), (4, 8), (4, 1), (1, 3)))
    assert all(o == outputs[0] for o in outputs[1:])


def test_same_seed_same_file(tmp_path, coded_moving):
    _, src, out, _, _ = coded_moving
    again = tmp_path / "again.nerv"
    _enc(src, again)
    assert again.read_bytes() == out.read_bytes()


def test_the_rate_lands_within_10_percent_of_the_target(tmp_path, coded_moving):
    _, src, _, _, _ = coded_moving
    for bpp in (2.5, 5.0):
        res = _enc(src, tmp_path / f"r{bpp}.nerv", bpp=bpp, steps=200)   # 120 steps: 8-11 % under
        assert abs(res.bpp - bpp) <= 0.1 * bpp, (bpp, res.bpp)


@pytest.mark.parametrize("term", ["whole", "sampled"])
def test_reaches_the_quality_floor(tmp_path, term):
    info, frames = make_moving_clip()
    src = tmp_path / "moving.y4m"
    write_video(src, info, frames)
    p = plan([src], tmp_path / "g.nerv", EncodeConfig(model="latent-grid", bpp=1.0, steps=300, device="cpu",
                                                      rate_term=term))
    assert p.fit.sample_rate == (term == "sampled")
    fitted = fit_model(p)
    assert fitted.result.sampled_rate == (term == "sampled")
    coded = code(p, fitted)
    assert coded.psnr >= FLOOR_DB, coded.psnr


def test_gop_is_the_latent_grid_models_setting(tmp_path, coded_moving):
    _, src, _, _, _ = coded_moving
    with pytest.raises(ConfigError, match=r"needs at least \d+ .*--bpp [0-9.]+ is the least"):
        encode([src], tmp_path / "low.nerv", EncodeConfig(model="latent-grid", bpp=0.5, steps=1, device="cpu"))
    with pytest.raises(ConfigError, match="--gop"):
        encode([src], tmp_path / "x.nerv", EncodeConfig(model="nerv", params=2000, steps=1, device="cpu", gop=4))
    with pytest.raises(ConfigError, match="--gop"):
        EncodeConfig(model="latent-grid", gop=0)
    nf = read_file(coded_moving[2])
    assert nf.header.model["config"]["group"] == 4


def test_cli_encodes_with_the_latent_grid_model(tmp_path, coded_moving):
    _, src, _, _, _ = coded_moving
    out = tmp_path / "cli.nerv"
    r = CliRunner().invoke(cli, ["encode", str(src), str(out), "--model", "latent-grid", "--bpp", "2", "--steps",
                                 "10", "--gop", "5", "--device", "cpu", "--json", "-q"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["model"] == "latent-grid" and d["bytes"] == out.stat().st_size
    r = CliRunner().invoke(cli, ["decode", str(out), "-o", str(tmp_path / "up.y4m"), "--fps-scale", "2", "-q"])
    assert r.exit_code == 0, r.output
    _, up = read_video(tmp_path / "up.y4m")
    assert up.num_frames == 22


# ----------------------------------------------------------------------------------------- the rate term

def test_noise_phase_then_rounding():
    m = build_model("latent-grid", _tiny_config())
    spec = model_spec("latent-grid")
    rate = RateTerm(RateTermConfig(pixels=1000, target_bits=5000.0, start=spec.rate_start,
                                   noise_until=spec.noise_until), m)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    rate.begin(m)
    assert rate.noisy(0, 100) and rate.noisy(84, 100) and not rate.noisy(85, 100)
    floats = [p.detach().clone() for p in m.parameters()]
    steps = rate.steps()
    rate.swap_in(m, noise=True)
    noisy = [p.detach().clone() for p in m.parameters()]
    rate.swap_out(m)
    rate.swap_in(m, noise=False)
    rounded = [p.detach().clone() for p in m.parameters()]
    rate.swap_out(m)
    for (name, _), f, n, r in zip(m.named_parameters(), floats, noisy, rounded):
        s = float(steps[name][0])
        assert float((n - f).abs().max()) <= 0.5 * s * (1 + 1e-5)          # within half a step
        assert torch.equal(r, torch.round(f / s) * s)                     # exactly the file's rounding
    assert all(torch.equal(p, f) for p, f in zip(m.parameters(), floats))  # float weights back


def test_the_controller_measures_the_coded_size():
    """coded_bits follows the coder: for a mostly-zero grid it is far below the Laplace estimate."""
    m = build_model("latent-grid", _tiny_config(frames=40, height=48, width=64))
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.where(torch.rand(p.shape) < 0.9, torch.zeros(p.shape), torch.randn(p.shape)))
    rate = RateTerm(RateTermConfig(pixels=1000, target_bits=1e5, check_coded=True), m)
    rate.begin(m)
    est = rate.estimate_bits(m)
    coded = rate.coded_bits(m)
    steps = rate.steps()
    state = {k: v.detach() for k, v in m.state_dict().items()}
    real = 8 * len(pack_weights(quantized_state(state, steps, None)))
    assert abs(coded - real) <= 0.03 * real + 8 * 2 * len(steps), (coded, real, est)


def test_hand_written_laplace_gradient_equals_autograds():
    from nervcodec.quant.qat import _LaplaceBits, laplace_bits, segment_sums
    torch.manual_seed(0)
    sizes = [300, 2000, 7]
    owner = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))     # element -> tensor
    spread = torch.tensor([0.02, 1.5, 6.0], dtype=torch.float64).repeat_interleave(torch.tensor(sizes))
    x = (torch.randn(sum(sizes), dtype=torch.float64) * spread).requires_grad_()

    def beta(v):   # depends on x too: the gradient also flows through the maximum-likelihood scale
        return (segment_sums(v.abs(), sizes) / torch.tensor(sizes, dtype=torch.float64)).clamp_min(0.05)

    ref = laplace_bits(x, beta(x)[owner])
    g_ref, = torch.autograd.grad(ref, x)
    got = _LaplaceBits.apply(x, beta(x), sizes)
    g_got, = torch.autograd.grad(got, x)
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    assert torch.allclose(g_got, g_ref, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ the rate term over sampled rows

def _grid_with_values(seed: int = 0, **kw) -> LatentGrid:
    m = build_model("latent-grid", _tiny_config(**kw))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():    # latents mostly zero, as a fit leaves them; the network dense
            zero = torch.rand(p.shape, generator=g) < (0.7 if name.startswith(LATENT_PREFIXES) else 0.0)
            p.copy_(torch.where(zero, torch.zeros(p.shape), torch.randn(p.shape, generator=g)))
    return m


def test_rate_rows_are_the_frames_a_batch_reads():
    m = _grid_with_values(frames=12)
    t = torch.tensor([[3, 4], [9, 10]], dtype=torch.float32) / 12
    rows = m.rate_rows(t)
    assert set(rows) == {f"frame{level}" for level in range(m.config.levels)}
    assert all(r.tolist() == [3, 4, 9, 10] for r in rows.values())
    # a time between two frames reads both (frame-rate up-conversion blends them)
    assert m.rate_rows(torch.tensor([[5.5 / 12]]))["frame0"].tolist() == [5, 6]
    # the frames' forward pass reads no other row of a per-frame map: its gradient there is zero
    m.zero_grad()
    m(t).sum().backward()
    for level in range(m.config.levels):
        g = getattr(m, f"frame{level}").grad
        other = torch.ones(12, dtype=torch.bool)
        other[rows[f"frame{level}"]] = False
        assert float(g[other].abs().max()) == 0.0 and float(g[~other].abs().max()) > 0.0
    assert VideoModel.rate_rows(m, t) == {}      # what a model without per-frame tensors says


def test_sampled_rates_average_to_the_whole_one():
    """Over the rows of every frame once (the fit's order of frames over an epoch), the sampled estimates
    average to the bits of every row (rounded symbols: no noise)."""
    m = _grid_with_values(frames=12)
    rate = RateTerm(RateTermConfig(pixels=1000, target_bits=1e5), m)
    rate.begin(m)
    whole = float(rate.bits(m, noise=False).detach())
    parts = []
    for first in range(0, 12, 3):
        picked = rate._sampled(m.rate_rows(torch.arange(first, first + 3, dtype=torch.float32)[None] / 12))
        parts.append(float(rate._sampled_bits(m, picked, noise=False).detach()))
    assert len(set(parts)) > 1                                   # the frames differ ...
    assert np.mean(parts) == pytest.approx(whole, rel=1e-5)     # ... and average to the whole


def test_a_sampled_swap_touches_only_the_rows_it_reads():
    m = _grid_with_values(frames=12)
    rate = RateTerm(RateTermConfig(pixels=1000, target_bits=1e5), m)
    rate.begin(m)
    floats = {n: p.detach().clone() for n, p in m.named_parameters()}
    steps = rate.steps()
    rows = m.rate_rows(torch.tensor([[2.0, 7.0]]) / 12)
    rate.swap_in(m, noise=False, rows=rows)
    for name, p in m.named_parameters():
        s = float(steps[name][0])
        q = torch.round(floats[name] / s) * s
        if name in rows:
            r = rows[name]
            assert torch.equal(p[r], q[r])                        # the rows read: the file's rounding
            keep = torch.ones(p.shape[0], dtype=torch.bool)
            keep[r] = False
            assert torch.equal(p[keep], floats[name][keep])     # the others: left as they were
        else:
            assert torch.equal(p, q)
    for p in m.parameters():     # a distortion gradient, as the fit's backward pass leaves one
        p.grad = torch.zeros_like(p)
    bits = rate.swap_out(m)
    assert all(torch.equal(p, floats[n]) for n, p in m.named_parameters())   # float weights back
    scale = float(rate.lam) / rate.cfg.pixels
    pushed = {name: getattr(m, name).grad.clone() for name in rows}   # swap_out pushed the rows not drawn
    rate.rate_loss(bits).backward()
    for name in rows:
        p, g, r = getattr(m, name), getattr(m, name).grad, rows[name]
        s = float(steps[name][0])
        beta = max(float(floats[name].abs().sum()) / (p.numel() * s), 0.05)
        keep = torch.ones(g.shape[0], dtype=torch.bool)
        keep[r] = False
        x = floats[name][keep] / s
        tail = scale / (beta * math.log(2) * s)             # the bits' slope in the Laplace's tail, per weight
        far = x.abs() >= 1                                   # there, whatever the noise: the tail's slope
        assert int(far.sum()) > 0 and torch.allclose(g[keep][far], torch.sign(x[far]) * tail, rtol=1e-5)
        assert float(g[keep].abs().max()) <= tail * (1 + 1e-5)                 # nowhere steeper
        assert torch.equal(g[keep], pushed[name][keep]) and float(pushed[name][r].abs().max()) == 0.0
        assert float(g[r].abs().max()) > 0.0                                # the rows drawn: the term's own
    assert float(m.still0.grad.abs().max()) > 0.0 and rate.log_step.grad is not None


def test_the_push_is_the_rates_gradient_with_its_noise():
    """The rows not drawn get the whole term's gradient at a noisy draw of their symbols (without the small
    part that comes through the tensor's Laplace scale, a mean of every |w|): the same draw by draw where
    the noise cannot move a symbol out of the Laplace's tail (|w / s| >= 1), the same on average over the
    draws nearer zero; and the steps get the term's gradient through every row."""
    m = _grid_with_values(frames=12)
    rate = RateTerm(RateTermConfig(pixels=1000, target_bits=1e5), m)
    rate.begin(m)
    p = m.frame1
    i = rate.names.index("frame1")
    torch.manual_seed(0)
    s = float(rate.steps()["frame1"][0])
    with torch.no_grad():   # symbols on both sides of one step
        p.copy_(torch.randn(p.shape) * 1.5 * s)
    params = [q for _, q in m.named_parameters()]
    picked = [torch.zeros(0, dtype=torch.long) if n == "frame1" else None for n in rate.names]
    whole, pushed, draws = torch.zeros_like(p), torch.zeros_like(p), 400
    for _ in range(draws):
        g, = torch.autograd.grad(rate.rate_loss(rate.bits(m)), p)
        whole += g / draws
        p.grad = torch.zeros_like(p)
        rate._push(params, picked)
        pushed += p.grad / draws
    x = (p / s).detach()
    tail = x.abs() >= 1
    assert int(tail.sum()) > 50 and int((~tail & (x != 0)).sum()) > 20
    assert torch.allclose(pushed[tail], whole[tail], rtol=0.03)    # the term's scale, a mean of |w|, adds ~2 %
    near = ~tail & (x.abs() > 0.2)   # the average of 400 draws: within a few standard errors of the slope
    assert float((pushed[near] - whole[near]).abs().max()) < 0.25 * float(whole[tail].abs().max())
    assert bool((torch.sign(pushed[near]) == torch.sign(whole[near])).all())
    # the step: -sum(g x) over every row, as the term's gradient through w / s (its scale held fixed)
    p.grad = torch.zeros_like(p)
    g_steps = torch.stack([rate._push(params, picked)[i] for _ in range(draws)]).mean()
    assert float(g_steps) == pytest.approx(float(-(whole * x).sum()), rel=0.05)


def test_rows_gradient_equals_index_selects():
    from nervcodec.quant.qat import _Rows
    torch.manual_seed(1)
    p = torch.randn(9, 4, 5, requires_grad=True)
    r = torch.tensor([1, 4, 8])
    w = torch.randn(3, 4, 5)
    (_Rows.apply(p, r) * w).sum().backward()
    got = p.grad.clone()
    p.grad = None
    (p.index_select(0, r) * w).sum().backward()
    assert torch.equal(got, p.grad)


def test_a_model_without_per_frame_tensors_fits_the_same_with_and_without_sampling(tmp_path):
    """D-NeRV (no per-frame tensors) writes the same bytes whichever way the rate would be estimated."""
    outs = []
    for term in ("sampled", "whole"):
        (tmp_path / term).mkdir()
        _, _, out, res, _ = encode_moving(tmp_path / term, "d", model="dnerv", bpp=8.0, steps=12, seed=0,
                                          device="cpu", rate_term=term)
        assert res.rate_term == "whole"          # what the fit did: there was nothing to sample
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_every_preset_keeps_the_whole_rate_term_unless_sampling_is_asked_for():
    from nervcodec.codec.effort import EFFORT_PRESETS
    assert not any(EncodeConfig(preset=name).sampled_rate for name in EFFORT_PRESETS)
    assert EncodeConfig(preset="fast", rate_term="sampled").sampled_rate
    assert not EncodeConfig(rate_term="whole").sampled_rate
    with pytest.raises(ConfigError, match="unknown rate term 'half'"):
        EncodeConfig(rate_term="half")


@pytest.mark.parametrize("term", ["sampled", "whole"])
def test_the_rate_term_reaches_the_fit_and_the_json(tmp_path, term):
    info, frames = make_moving_clip()
    src = tmp_path / "moving.y4m"
    write_video(src, info, frames)
    out = tmp_path / "g.nerv"
    asked = ["--rate-term", "sampled"] if term == "sampled" else []
    r = CliRunner().invoke(cli, ["encode", str(src), str(out), "--model", "latent-grid", "--bpp", "3.0", "--steps",
                                 "30", "--preset", "fast", "--device", "cpu", "--json", "-q", *asked])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rate_term"] == term
    r = CliRunner().invoke(cli, ["encode", str(src), str(out), "-y", "--rate-term", "half"])
    assert r.exit_code == 2 and "half" in r.output


def test_info_reports_the_latents_bits(coded_moving):
    _, _, out, _, _ = coded_moving
    r = CliRunner().invoke(cli, ["info", str(out), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    text = json.dumps(d)
    assert "frame0" in text and "group0" in text and "latent-grid" in text


def test_params_is_refused_for_a_model_the_video_sizes(tmp_path, coded_moving):
    _, src, _, _, _ = coded_moving
    with pytest.raises(ConfigError, match="--params"):
        encode([src], tmp_path / "p.nerv", EncodeConfig(model="latent-grid", params=5000, steps=1, device="cpu"))


def test_interpolation_task_runs_on_latent_grids(tmp_path, coded_moving):
    _, src, _, _, _ = coded_moving
    res = _enc(src, tmp_path / "h.nerv", holdout="every:2", verify=True, steps=100)
    tasks = res.verify.tasks
    # unseen frames blend their group's maps: well above the untrained model's 8.7 dB (measured: 15.1)
    assert tasks.frames_unseen == 5 and tasks.psnr_rgb_unseen is not None and tasks.psnr_rgb_unseen > 12


def test_resumed_latent_grid_fit_is_bit_identical(tmp_path, monkeypatch):
    """Stopped in the noise phase, after a measurement of the coded size: the resumed fit writes the
    same file (the noise's generator, the controller's ratio and its step counter are in the checkpoint)."""
    from nervcodec.errors import InterruptedError_
    info, frames = make_moving_clip(width=32, height=24, frames=6)
    src = tmp_path / "m.y4m"
    write_video(src, info, frames)
    cfg = dict(model="latent-grid", bpp=4.0, steps=60, device="cpu", gop=3, force=True)
    ref = tmp_path / "ref.nerv"
    encode([src], ref, EncodeConfig(**cfg))
    out, ck = tmp_path / "out.nerv", tmp_path / "fit.ckpt"
    with monkeypatch.context() as m:
        interrupt_at(m, 40)
        with pytest.raises(InterruptedError_):
            encode([src], out, EncodeConfig(**cfg, checkpoint=str(ck), checkpoint_seconds=1e9))
    encode([src], out, EncodeConfig(**cfg, checkpoint=str(ck), resume=True))
    assert out.read_bytes() == ref.read_bytes()


def test_latent_maps_start_where_the_budget_holds_them():
    """A clip with far more latents than its budget has bits starts them at a shared step at which the
    estimate fits the budget (each map no coarser than all-zero), and the network where it did; with a
    budget that holds every latent at the network's bits per value, nothing changes."""
    torch.manual_seed(0)
    m = build_model("latent-grid", _tiny_config(frames=40, height=48, width=64))
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith(LATENT_PREFIXES):   # maps the fit used a little, one barely
                p.normal_().mul_(1e-4 if name == "frame0" else 0.05)
    assert set(m.latent_names()) == {n for n, _ in m.named_parameters() if n.startswith(LATENT_PREFIXES)}
    latents = sum(m.state_dict()[n].numel() for n in m.latent_names())
    target = 0.05 * latents
    tight = RateTerm(RateTermConfig(pixels=1000, target_bits=target), m)
    tight.begin(m)
    net = torch.nn.Module()      # the same parameters in a module that names no latents: the old start
    for name, p in m.named_parameters():
        net.register_parameter(name.replace(".", "_"), p)
    uniform = RateTerm(RateTermConfig(pixels=1000, target_bits=target), net)
    uniform.begin(net)
    st, su = tight.steps(), uniform.steps()
    for name in tight.names:
        a, b = float(st[name][0]), float(su[name.replace(".", "_")][0])
        if name in m.latent_names():
            assert a >= b * (1 - 1e-3)                                   # never finer than before
            top = 2 * float(m.state_dict()[name].abs().max())
            assert a <= max(b, top) * (1 + 1e-3)                         # never coarser than all-zero
        else:
            assert a == b                                                # the network as before
    frame0 = m.state_dict()["frame0"]
    assert not torch.round(frame0 / float(st["frame0"][0])).any()       # the barely used map: all zero
    assert torch.round(frame0 / float(su["frame0"][0])).any()
    est = tight.estimate_bits(m)
    assert 0.8 * target <= est <= 1.05 * target, (est, target)
    assert uniform.estimate_bits(net) > 5 * target                       # where the old start began

    generous = RateTerm(RateTermConfig(pixels=1000, target_bits=20.0 * (latents + 10_000)), m)
    generous.begin(m)
    again = RateTerm(RateTermConfig(pixels=1000, target_bits=20.0 * (latents + 10_000)), net)
    again.begin(net)
    assert all(float(generous.steps()[n][0]) == float(again.steps()[n.replace(".", "_")][0]) for n in generous.names)


def test_latent_weights_make_step_squared_times_sensitivity_equal():
    """Maps whose distortion curvature is larger start finer: s^2 v is the same for every map with a
    curvature (equal slopes of distortion against rate), scaled to a geometric mean of 1; a map without
    one gets the coarsest weight of the others."""
    w = latent_weights([1.0, 4.0, 0.25, 0.0])
    assert w is not None
    for wi, v in zip(w[:3], [1.0, 4.0, 0.25]):
        assert math.isclose(wi * wi * v, w[0] * w[0] * 1.0, rel_tol=1e-12)
    assert math.isclose(w[0] * w[1] * w[2], 1.0, rel_tol=1e-12)
    assert w[3] == max(w[:3]) == w[2]
    assert latent_weights(None) is None and latent_weights([0.0, 0.0]) is None


def test_latent_start_gives_the_maps_that_matter_more_of_the_budget():
    """With the maps' curvatures, a tight budget goes where the distortion is most sensitive: the map
    with 100x the others' curvature starts finer than the shared step, the others no finer, and the
    estimate still fits the budget; equal curvatures give exactly the shared-step start."""
    torch.manual_seed(0)
    m = build_model("latent-grid", _tiny_config(frames=40, height=48, width=64))
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith(LATENT_PREFIXES):
                p.normal_().mul_(0.05)
    latents = sum(m.state_dict()[n].numel() for n in m.latent_names())
    target = 0.05 * latents
    names = [n for n, _ in m.named_parameters()]

    def start(sensitivity):
        rate = RateTerm(RateTermConfig(pixels=1000, target_bits=target), m)
        rate.begin(m, sensitivity)
        return rate, {n: float(v[0]) for n, v in rate.steps().items()}

    _, shared = start(None)
    _, equal = start({n: 3.0 for n in names})
    assert equal == shared
    rate, weighed = start({n: 100.0 if n == "group1" else 1.0 for n in names})
    assert weighed["group1"] < 0.5 * shared["group1"]
    for n in m.latent_names():
        if n != "group1":
            assert weighed[n] >= shared[n] * (1 - 1e-6)
    assert 0.8 * target <= rate.estimate_bits(m) <= 1.05 * target


def test_curvature_is_the_loss_weighted_jacobian_squared():
    """Hutchinson's probes of diag(J^T W J), for a model whose output is linear in its parameter: each
    output sample is one parameter times a known gain, so the curvature of parameter k is gain_k^2 x the
    loss's weight of its sample (plane weight over the plane's samples), and zero for samples in frames
    outside the loss (the mask) and for a parameter the output does not read."""
    b, d, h, w = 2, 3, 4, 6

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.z = torch.nn.Parameter(torch.ones(b, d, 3, h, w))
            self.unused = torch.nn.Parameter(torch.ones(5))
            self.gain = torch.arange(1, b * d * 3 * h * w + 1, dtype=torch.float32).reshape(b, d, 3, h, w) / 100

        def forward(self, t, keyframes):               # t holds each item's index
            i = t[:, 0].long()
            return self.z[i] * self.gain[i]

    model = Linear()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    items = torch.arange(b, dtype=torch.float32)[:, None].expand(b, d)
    data = FitData(items, torch.zeros(b, d, h, w, dtype=torch.uint8), torch.zeros(b, d, 2, h, w, dtype=torch.uint8),
                   mask, None, 255, (0, 0))
    got = curvature(model, model.forward, data, batch=b, seed=0, probes=4000)
    plane_w = torch.tensor(PLANE_WEIGHTS).reshape(1, 1, 3, 1, 1) / (h * w)
    want = float((model.gain ** 2 * plane_w * mask[:, :, None, None, None]).mean())
    assert math.isclose(got["z"], want, rel_tol=0.05), (got["z"], want)
    assert got["unused"] == 0.0
    again = curvature(model, model.forward, data, batch=b, seed=0, probes=4000)
    assert again == got                                                  # its own seeded generator
    assert curvature(model, model.forward, data, batch=b, seed=0, probes=4000, names=["z"]) == {"z": got["z"]}
