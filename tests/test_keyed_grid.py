"""latent-grid-kf: latent grids whose synthesis corrects the blend of each clip's decoded keyframes."""
from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import torch

from nervcodec.codec import EncodeConfig, decode, encode
from nervcodec.codec import coding
from nervcodec.codec.coding import code
from nervcodec.codec.fitting import FittedModel, fit_model
from nervcodec.codec.plan import plan
from nervcodec.codec.rate import LEARNED_BITS_PER_PARAM
from nervcodec.container import read_file
from nervcodec.errors import ConfigError, NervCodecWarning
from nervcodec.io import write_video
from nervcodec.model import build_model, config_from_dict, config_to_dict
from nervcodec.model.grid import (KEYED_WIDTHS, MOTION_DEFAULT, MOTION_OUTPUTS, MOTION_SCALE, NETWORK_SHARE,
                                  KeyedGridConfig, KeyedLatentGrid, floor_size, latent_grid_param_count,
                                  plan_keyed_grid)

from conftest import (assert_ranges_equal_the_full_decode, decoded_psnr_yuv, decodes_with_threads_and_batches,
                      encode_moving, load_benchmark, make_moving_clip, write_moving_clip)


def _config(**kw) -> KeyedGridConfig:
    base = dict(height=12, width=20, channels=3, frames=9, group=4, levels=3, hidden=(6,), refine=1, clip_len=4)
    base.update(kw)
    return KeyedGridConfig(**base)


def test_the_synthesis_is_the_widest_that_a_third_of_the_weights_room_holds():
    """The planner's room (weights the rate leaves at 4 bits each) sizes the network, never the latents."""
    net = {h: floor_size(plan_keyed_grid(144, 176, 3, 0, frames=120, clip_len=2, hidden=h))[0] for h in KEYED_WIDTHS}
    assert list(net.values()) == sorted(net.values(), reverse=True) and net[(24, 24)] == 1640
    assert plan_keyed_grid(144, 176, 3, 0, frames=120, clip_len=2).hidden == (24, 24)          # no budget (--lambda)
    for wider, h in zip(KEYED_WIDTHS, KEYED_WIDTHS[1:]):    # the room a width needs, and one weight less
        need = math.ceil(net[wider] / NETWORK_SHARE)
        assert plan_keyed_grid(144, 176, 3, need, frames=120, clip_len=2).hidden == wider
        assert plan_keyed_grid(144, 176, 3, need - 1, frames=120, clip_len=2).hidden == h
    assert plan_keyed_grid(144, 176, 3, 10, frames=120, clip_len=2).hidden == (8, 8)             # the narrowest
    assert plan_keyed_grid(144, 176, 3, 10, frames=120, clip_len=2, hidden=(40, 40)).hidden == (40, 40)   # asked for
    a, b = plan_keyed_grid(144, 176, 3, 10 ** 6, frames=120, clip_len=2), plan_keyed_grid(144, 176, 3, 0, frames=120,
                                                                                          clip_len=2, hidden=(24, 24))
    assert a == b                                                             # the latents follow the video alone


def test_the_encoder_sizes_the_grids_network_by_the_rate(tmp_path):
    src = write_moving_clip(tmp_path / "m.y4m", width=64, height=48, frames=17)
    got = {}
    for bpp in (0.8, 6.0):
        p = plan([src], tmp_path / "z.nerv", EncodeConfig(model="latent-grid-kf", bpp=bpp, steps=1, device="cpu",
                                                          clip_len=4, keyframe_codec="hevc"))
        room = p.weight_budget * 8 / LEARNED_BITS_PER_PARAM
        assert floor_size(p.config)[0] <= NETWORK_SHARE * room or p.config.hidden == KEYED_WIDTHS[-1]
        got[bpp] = p.config.hidden
    assert KEYED_WIDTHS.index(got[0.8]) > KEYED_WIDTHS.index(got[6.0])
    p = plan([src], tmp_path / "z.nerv", EncodeConfig(model="latent-grid-kf", lam=1e-3, steps=1, device="cpu",
                                                      clip_len=4, keyframe_codec="hevc"))
    assert p.config.hidden == KEYED_WIDTHS[0]


def test_the_config_adds_the_keyframes_to_the_synthesis_inputs():
    c = plan_keyed_grid(144, 176, 3, 0, frames=48, group=16, clip_len=8)
    assert c.clip_len == 8 and c.inputs == 3 * 7 + 6
    m = KeyedLatentGrid(c)
    assert m.num_params() == latent_grid_param_count(c) and m.clip_len == 8 and m.needs_keyframes
    with pytest.raises(ConfigError, match="clip length"):
        plan_keyed_grid(144, 176, 3, 0, frames=48, clip_len=1)


def test_the_output_corrects_the_blend_of_the_two_keyframes():
    torch.manual_seed(0)
    m = build_model("latent-grid-kf", _config())
    k = torch.rand(2, 2, 3, 12, 20) * 0.8 + 0.1
    t = torch.arange(8, dtype=torch.float32).view(2, 4) / 9
    tau = (torch.arange(4.0) / 4).view(1, 4, 1, 1, 1)
    blend = k[:, 0:1] + tau * (k[:, 1:2] - k[:, 0:1])
    with torch.no_grad():
        m.mlp[-1].weight.zero_()              # no correction: the blend itself, frame by frame
        for blk in m.refine:
            blk[2].weight.zero_()
        assert torch.allclose(m(t, k), blend, atol=1e-6)
        m.mlp[-1].bias.fill_(0.05)           # a correction moves every pixel by it
        assert torch.allclose(m(t, k), blend + 0.05, atol=1e-6)
        other = k.flip(1)                    # other keyframes, another picture: the model reads them
        assert not torch.allclose(m(t, other), m(t, k))
    with pytest.raises(ValueError, match="keyframes"):
        m(t)


def _without_a_correction(m: KeyedLatentGrid) -> None:
    m.mlp[-1].weight.zero_()
    m.mlp[-1].bias.zero_()
    for blk in m.refine:
        blk[2].weight.zero_()
        blk[2].bias.zero_()


def test_motion_warps_each_keyframe_by_its_field_and_blends_them_by_the_corrected_weight():
    """motion=True: the last layer's five more outputs are a displacement per keyframe (MOTION_SCALE pixels per
    unit) and a correction of the blend weight; at zero it is the plain blend, and a new model starts there."""
    torch.manual_seed(0)
    c = _config(motion=True)
    assert c.outputs == 3 + MOTION_OUTPUTS and c.inputs == _config().inputs
    m = build_model("latent-grid-kf", c)
    assert m.num_params() == latent_grid_param_count(c) == latent_grid_param_count(_config()) + 5 * (6 + 1)
    assert not m.mlp[-1].weight[3:].any() and not m.mlp[-1].bias.any()          # no motion at the start
    k = torch.rand(2, 2, 3, 12, 20) * 0.8 + 0.1
    t = torch.arange(8, dtype=torch.float32).view(2, 4) / 9
    tau = (torch.arange(4.0) / 4).view(1, 4, 1, 1, 1)
    blend = k[:, 0:1] + tau * (k[:, 1:2] - k[:, 0:1])
    with torch.no_grad():
        _without_a_correction(m)
        assert torch.allclose(m(t, k), blend, atol=1e-6)
        bias = m.mlp[-1].bias
        bias[3] = 1.0 / MOTION_SCALE          # keyframe 0 read one pixel to the right
        bias[6] = -2.0 / MOTION_SCALE         # keyframe 1 read two rows up
        bias[7] = 0.2                         # and the blend weight 0.2 towards keyframe 1
        right = torch.cat([k[..., 1:], k[..., -1:]], dim=-1)[:, 0:1]              # the border repeated
        up = torch.cat([k[..., :1, :], k[..., :1, :], k[..., :-2, :]], dim=-2)[:, 1:2]
        w = tau + 0.2
        assert torch.allclose(m(t, k), right * (1 - w) + up * w, atol=1e-5)
        bias[3:] = 0.0
        assert torch.allclose(m(t, k), blend, atol=1e-6)


def test_a_file_written_before_motion_decodes_as_the_plain_blend():
    """Files of latent-grid-kf written before the field existed have no "motion" in their config: False."""
    stored = config_to_dict(_config())
    del stored["motion"]
    assert config_from_dict(KeyedGridConfig, stored) == _config() and not _config().motion
    assert plan_keyed_grid(144, 176, 3, 0, frames=48, clip_len=8).motion is MOTION_DEFAULT
    assert not plan_keyed_grid(144, 176, 3, 0, frames=48, clip_len=8, motion=False).motion


@pytest.fixture(scope="module")
def coded_keyed(tmp_path_factory):
    return encode_moving(tmp_path_factory.mktemp("kf"), "k", model="latent-grid-kf", bpp=3.0, steps=60,
                         device="cpu", gop=4, clip_len=4, verify=True)


def test_encode_reports_what_decode_produces_and_the_file_describes_the_model(coded_keyed):
    d, _, out, res, frames = coded_keyed
    assert res.model == "latent-grid-kf" and res.bytes == out.stat().st_size and res.keyframe_bytes > 0
    nf = read_file(out)
    assert nf.header.model["config"]["clip_len"] == 4 and nf.header.model["config"]["group"] == 4
    assert nf.header.model["layout"]["time"] == "global" and nf.header.model["layout"]["patch"] == [24, 32]
    from nervcodec.container.keyframes import parse_keyframe_section
    from nervcodec.container.nervfile import SECTION_KEYFRAMES
    assert res.keyframe_quality == parse_keyframe_section(nf.section(SECTION_KEYFRAMES)).quality
    assert isinstance(res.keyframes_recoded, bool) and json.loads(json.dumps(res.to_dict()))["keyframe_quality"] > 0
    n, psnr = decoded_psnr_yuv(out, d / "full.y4m", frames)
    assert n == 11 and psnr == pytest.approx(res.psnr, abs=1e-9)


def test_random_access_per_clip_equals_the_full_decode(coded_keyed):
    d, _, out, _, _ = coded_keyed
    assert_ranges_equal_the_full_decode(out, d, {"4:8": (4, 8), "9:11": (9, 11), "6": (6, 7)}, batch=1)


def test_decode_is_identical_with_1_and_4_threads(coded_keyed):
    d, _, out, _, _ = coded_keyed
    outputs = decodes_with_threads_and_batches(out, d, ((1, 8), (4, 2)))
    assert outputs[0] == outputs[1]


def test_some_clip_positions_equal_the_whole_clips_output_there():
    torch.manual_seed(0)
    m = build_model("latent-grid-kf", _config()).eval()
    for name, p in m.named_parameters():
        if name.startswith(("frame", "group", "still")):
            p.data.normal_()
    t = torch.tensor([[0.0, 1, 2, 3], [4, 5, 6, 7]]) / 9
    k = torch.rand(2, 2, 3, 12, 20)
    with torch.no_grad():
        whole = m(t, k)
        assert torch.equal(m(t, k, slots=[1, 3]), whole[:, [1, 3]])
        assert torch.equal(m(t, k, slots=[2]), whole[:, [2]])


def test_the_synthesis_skips_the_keyframes_and_decodes_the_same(coded_keyed, monkeypatch):
    """The decoder asks the grids only for the frames it shows (keyframes are the decoded keyframes);
    the file decodes to the same bytes as when every position is made and the keyframes replace theirs."""
    d, _, out, _, _ = coded_keyed
    asked = []
    forward = KeyedLatentGrid.forward

    def spy(self, t, keyframes=None, phase=0.0, slots=None):
        asked.append(None if slots is None else list(slots))
        return forward(self, t, keyframes, phase, slots)

    monkeypatch.setattr(KeyedLatentGrid, "forward", spy)
    decode(out, d / "shown.y4m", device="cpu", force=True)
    made = asked[1:]                                  # (the first call is the loader's shape check)
    assert made and all(s is not None and 0 not in s for s in made)          # D = 4: slot 0 is a keyframe
    decode(out, d / "one.y4m", device="cpu", frames="5", force=True)
    assert asked[-1] == [1]                                                  # random access: frame 5 only
    monkeypatch.setattr(KeyedLatentGrid, "frames_apart", False)
    del asked[:]
    decode(out, d / "every.y4m", device="cpu", force=True)
    assert asked and all(s is None for s in asked)
    assert (d / "shown.y4m").read_bytes() == (d / "every.y4m").read_bytes()


def test_the_decode_speed_benchmark_times_the_keyframes_weights_and_synthesis_apart(coded_keyed):
    """benchmarks/speed.py --decode: the whole decode, the synthesis inside it, and the keyframes and the
    weights section decoded on their own."""
    _, _, out, _, _ = coded_keyed
    row, = load_benchmark("speed").decode_speed([str(out)], "cpu")
    assert row["model"] == "latent-grid-kf" and row["frames"] == 11 and row["bytes"] == out.stat().st_size
    # both timed, neither compared: on a busy machine the keyframes alone can take as long as a tiny clip's
    # whole decode (a benchmark reports numbers; it is not a timing test)
    assert row["keyframe_seconds"] > 0 and row["decode_seconds"] > 0 and row["macs_per_pixel"] > 100
    assert row["weights_seconds"] > 0 and 0 < row["synthesis_seconds"] < row["decode_seconds"]
    assert row["batch"] == 8 and row["device_name"]


def test_the_decode_speed_benchmark_decodes_in_the_batches_it_is_given(coded_keyed, monkeypatch, capsys):
    """--decode FILE --batch N: every timed decode synthesises N frames per call, and the row says so."""
    import nervcodec.codec as codec
    _, _, out, _, _ = coded_keyed
    seen, real = [], codec.decode
    monkeypatch.setattr(codec, "decode", lambda *a, **k: seen.append(k["batch"]) or real(*a, **k))
    assert load_benchmark("speed").main(["--decode", str(out), "--batch", "3", "--json"]) == 0
    row, = json.loads(capsys.readouterr().out)
    assert seen == [3, 3, 3] and row["batch"] == 3 and row["frames"] == 11
    import platform
    import sys
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert row["freed_memory_kept"] == glibc           # decoded as the CLI decodes (nervcodec/alloc.py)
    import subprocess                                   # --default-malloc: glibc's defaults (a fresh process)
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"
    done = subprocess.run([sys.executable, str(script), "--decode", str(out), "--default-malloc", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["freed_memory_kept"] is False


def test_the_devices_benchmark_reports_what_decodes_on_each_device(coded_keyed, capsys):
    """benchmarks/devices.py: the symbols' digest, the quality encode reported, and no sample differing
    between two decodes on the same device."""
    _, src, out, res, _ = coded_keyed
    bench = load_benchmark("devices")
    assert bench.main([str(out), "--device", "cpu", "--device", "cpu", "--source", str(src), "--json"]) == 0
    row, = json.loads(capsys.readouterr().out)
    first, second = row["devices"].values()
    assert row["symbols_sha256"] == bench.symbols_digest(out) and len(row["symbols_sha256"]) == 16
    assert first["psnr_yuv"] == pytest.approx(res.psnr, abs=1e-9) == second["psnr_yuv"]
    assert second["samples_differing"] == 0 and second["samples"] == 11 * 32 * 24 * 3 // 2
    with pytest.raises(SystemExit):
        bench.main([str(out), str(out), "--source", str(src)])


def test_the_entropy_speed_benchmark_decodes_the_section_and_codes_the_latents_again(coded_keyed):
    """benchmarks/speed.py --entropy: every symbol of the weights section, and the latent maps re-coded
    into what the section holds for them (their coded symbols, without their steps)."""
    from nervcodec.container.weights import tensor_rates
    from nervcodec.codec.decode import meta_network
    from nervcodec.container import SECTION_WEIGHTS
    _, _, out, _, _ = coded_keyed
    row, = load_benchmark("speed").entropy_speed([str(out)])
    nf = read_file(out)
    model = meta_network(nf)
    rates = tensor_rates(nf.section(SECTION_WEIGHTS), model.state_dict(), nf.version[0], nf.header.quant_bits)
    maps = [r for r in rates if r.name.startswith(("frame", "group", "still"))]
    assert row["symbols"] == sum(p.numel() for p in model.parameters()) and row["latent_maps"] == len(maps)
    assert row["latent_bytes"] == sum(r.bytes - 2 - 1 for r in maps)     # less each one's step and group count
    assert row["decode_seconds"] > 0 and row["latent_encode_seconds"] > 0


def test_two_frame_clips_decode_what_encode_reports_and_any_range_as_the_full_decode(tmp_path):
    """D = 2 (a candidate of the clip-length choice): every other frame a keyframe, the grids correct the
    frame between two (11 frames: keyframes 0, 2, ..., 10)."""
    d, _, out, res, frames = encode_moving(tmp_path, "d2", model="latent-grid-kf", bpp=3.0, steps=20,
                                           device="cpu", clip_len=2, verify=True)
    assert read_file(out).header.model["config"]["clip_len"] == 2 and res.clip_len == 2
    n, psnr = decoded_psnr_yuv(out, d / "whole.y4m", frames)
    assert n == 11 and psnr == pytest.approx(res.psnr, abs=1e-9)
    assert_ranges_equal_the_full_decode(out, d, {"1": (1, 2), "3:6": (3, 6), "10": (10, 11)}, batch=1)


def test_the_latents_beat_the_keyframes_blend(tmp_path):
    """The quality floor of this model: well above what its keyframes alone give (the untrained model)."""
    src = write_moving_clip(tmp_path / "moving.y4m", width=32, height=24, frames=9)
    cfg = dict(model="latent-grid-kf", bpp=4.0, device="cpu", clip_len=8, gop=8)
    p = plan([src], tmp_path / "k.nerv", EncodeConfig(steps=250, **cfg))
    coded = code(p, fit_model(p))
    blend = plan([src], tmp_path / "b.nerv", EncodeConfig(steps=1, lam=1e3, **cfg))
    zero = code(blend, fit_model(blend))      # every latent zero: about the keyframes' cross-fade
    assert coded.psnr >= zero.psnr + 6.0, (coded.psnr, zero.psnr)      # measured: 42.0 vs 29.5 dB


def test_a_collection_of_different_sizes_is_refused(tmp_path):
    paths = []
    for w, h in ((32, 24), (48, 32)):
        paths.append(write_moving_clip(tmp_path / f"m{w}.y4m", width=w, height=h, frames=5, name=f"m{w}"))
    with pytest.raises(ConfigError, match="one frame size"):
        encode(paths, tmp_path / "x.nerv", EncodeConfig(model="latent-grid-kf", bpp=2.0, steps=1, device="cpu"))


def test_a_collection_shares_one_time_axis_and_each_video_its_own_keyframes(tmp_path):
    """Two clips of one size: one global time axis for the grids, each video's keyframes from itself."""
    paths, sources = [], []
    for k, speed in enumerate((1.5, -2.0)):
        info, frames = make_moving_clip(width=32, height=24, frames=6, speed=speed, name=f"v{k}")
        paths.append(tmp_path / f"v{k}.y4m")
        write_video(paths[-1], info, frames)
        sources.append(frames)
    out = tmp_path / "set.nerv"
    res = encode(paths, out, EncodeConfig(model="latent-grid-kf", bpp=4.0, steps=200, device="cpu", clip_len=4))
    assert res.frames == 12 and read_file(out).header.model["config"]["frames"] == 12
    for k in range(2):
        n, psnr = decoded_psnr_yuv(out, tmp_path / f"d{k}.y4m", sources[k], video=str(k))
        assert n == 6 and psnr > 35.0, (k, psnr)     # measured 42.5 and 40.9 dB


def test_the_grids_keyframes_get_their_models_own_share_of_the_budget(tmp_path):
    """latent-grid-kf gives its keyframes 0.8 of a --bpp budget unless --keyframe-share says otherwise;
    D-NeRV keeps KEYFRAME_SHARE (0.6)."""
    from nervcodec.codec.keyframes import KEYFRAME_SHARE, keyframe_share
    assert keyframe_share(EncodeConfig(model="latent-grid-kf", bpp=1.0)) == 0.8
    assert keyframe_share(EncodeConfig(model="dnerv", bpp=1.0)) == KEYFRAME_SHARE == 0.6
    assert keyframe_share(EncodeConfig(model="latent-grid-kf", bpp=1.0, keyframe_share=0.4)) == 0.4
    src = write_moving_clip(tmp_path / "moving.y4m", width=32, height=24, frames=9)
    sections = {}
    for share in (None, 0.8, 0.3):
        p = plan([src], tmp_path / "k.nerv", EncodeConfig(model="latent-grid-kf", bpp=5.0, steps=1, device="cpu",
                                                          clip_len=4, keyframe_codec="hevc", keyframe_share=share))
        sections[share] = p.keyframes.section
        assert 0 < len(p.keyframes.section) <= (0.8 if share is None else share) * p.budget
    assert sections[None] == sections[0.8] and len(sections[0.3]) < len(sections[0.8])


def test_a_file_far_under_its_budget_gives_the_rest_to_its_keyframes(tmp_path, monkeypatch):
    """A fit that finds its network worth a sliver of its bytes (short latent-grid fits zero every latent)
    leaves a file far under its --bpp budget: its keyframes are coded again with what is left, and the
    file with them is kept when what decodes from it scores higher, and is what the encoder reports."""
    info, frames = make_moving_clip(width=64, height=48, frames=17)
    src = tmp_path / "m.y4m"
    write_video(src, info, frames)
    p = plan([src], tmp_path / "z.nerv", EncodeConfig(model="latent-grid-kf", bpp=0.8, steps=1, device="cpu",
                                                      clip_len=4, keyframe_share=0.7))   # its file far under
    state = {k: torch.zeros_like(v) for k, v in build_model("latent-grid-kf", p.config).state_dict().items()}
    zero = FittedModel(state, sum(v.numel() for v in state.values()), None,
                       steps={k: np.array([0.01], np.float16) for k in state})
    coded = code(p, zero)
    assert coded.keyframes_recoded and coded.keyframe_quality > p.keyframes.quality
    assert len(p.keyframes.section) < coded.keyframe_bytes and len(coded.data) <= p.budget
    (tmp_path / "z.nerv").write_bytes(coded.data)
    n, psnr = decoded_psnr_yuv(tmp_path / "z.nerv", tmp_path / "z.y4m", frames)
    assert n == 17 and psnr == pytest.approx(coded.psnr, abs=1e-9)

    monkeypatch.setattr(coding, "UNSPENT_FILE", 0.0)     # the file as the fit left it
    before = code(p, zero)
    assert not before.keyframes_recoded and before.keyframe_quality == p.keyframes.quality
    assert len(before.data) < len(coded.data) and before.psnr < coded.psnr
    monkeypatch.undo()

    real, measured = coding._measure, []
    def worse(plan_, model, kf):   # the re-coded keyframes decode worse: the file stays as it was
        measured.append(kf)
        got = real(plan_, model, kf)
        return got if kf is p.keyframes else (got[0] - 99.0, got[1] - 99.0)
    monkeypatch.setattr(coding, "_measure", worse)
    with pytest.warns(NervCodecWarning, match="worth less than its bytes"):   # and it says the budget is unspent
        kept = code(p, zero)
    assert len(measured) == 2 and kept.data == before.data and not kept.keyframes_recoded
    monkeypatch.undo()

    # keyframes already at their codec's highest quality are not coded again for nothing
    top = plan([src], tmp_path / "t.nerv", dataclasses.replace(p.cfg, keyframe_codec="hevc", keyframe_quality=51,
                                                                     keyframe_share=None,
                                                                     bpp=40.0))
    assert top.keyframes.top and top.keyframes.quality == 51 and not p.keyframes.top
    calls = []
    monkeypatch.setattr(coding, "encode_keyframes", lambda *a, **k: calls.append(k) or p.keyframes)
    at_top = dataclasses.replace(p, keyframes=dataclasses.replace(p.keyframes, top=True))
    with pytest.warns(NervCodecWarning, match="worth less than its bytes"):
        topped = code(at_top, zero)
    assert calls == [] and topped.data == before.data and not topped.keyframes_recoded
    with pytest.warns(NervCodecWarning, match="worth less than its bytes"):
        code(p, zero)                  # below the top the same stand-in is asked (and gives nothing better)
    assert len(calls) == 1 and calls[0]["above"] == p.keyframes.quality
    monkeypatch.undo()

    # a quality the user fixed (--keyframe-quality), or a fixed lambda, is not overridden
    for cfg in (dataclasses.replace(p.cfg, keyframe_quality=p.keyframes.quality, keyframe_share=None),
                dataclasses.replace(p.cfg, lam=1.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NervCodecWarning)
            assert code(dataclasses.replace(p, cfg=cfg), zero).data == before.data


def test_the_fit_synthesises_only_the_frames_in_its_loss(tmp_path, monkeypatch):
    """At D = 2 every clip's first frame is a keyframe the decoder substitutes: the fit skips it (half the
    synthesis of a step) and ends where the fit that makes it and multiplies its error by zero ends."""
    import importlib
    fit_module = importlib.import_module("nervcodec.fit.fit")
    src = write_moving_clip(tmp_path / "moving.y4m", width=32, height=24, frames=9)
    p = plan([src], tmp_path / "k.nerv", EncodeConfig(model="latent-grid-kf", bpp=4.0, device="cpu", clip_len=2,
                                                      steps=40))
    seen, synthesised = [], []
    real_live, real_forward = fit_module._live_slots, KeyedLatentGrid.forward
    monkeypatch.setattr(fit_module, "_live_slots", lambda m, d: seen.append(real_live(m, d)) or seen[-1])

    def counting(self, t, keyframes=None, phase=0.0, slots=None):
        out = real_forward(self, t, keyframes, phase, slots)
        if torch.is_grad_enabled():
            synthesised.append(out.shape[1])
        return out
    monkeypatch.setattr(KeyedLatentGrid, "forward", counting)
    skipped = fit_model(p)
    probes = synthesised.count(2)       # the curvature's probes at the rate term's start see whole clips
    assert seen == [[1]] and synthesised.count(1) == 40 and len(synthesised) == 40 + probes
    monkeypatch.setattr(fit_module, "_live_slots", lambda m, d: None)
    synthesised.clear()
    whole = fit_model(p)
    assert synthesised == [2] * (40 + probes)
    assert skipped.result.quant_psnr == pytest.approx(whole.result.quant_psnr, abs=0.05) and whole.result.quant_psnr > 20
    for name, v in whole.state.items():
        assert torch.allclose(skipped.state[name], v, atol=1e-3, rtol=1e-3), name


def test_a_step_draws_enough_two_frame_clips_for_two_frames_in_its_loss(tmp_path):
    """latent-grid-kf's default batch is in frames of loss, not clips: at D = 2 one clip has a single frame
    between its keyframes, so a step draws two; at D = 4 and 8 one clip has enough.  --batch overrides it;
    the other models keep their batch at every length."""
    from nervcodec.model import MODEL_SPECS
    spec = MODEL_SPECS["latent-grid-kf"]
    assert [spec.default_batch(d) for d in (2, 3, 4, 8)] == [2, 1, 1, 1]
    for name in ("dnerv", "nerv", "latent-grid"):
        other = MODEL_SPECS[name]
        assert [other.default_batch(d) for d in (1, 2, 8)] == [other.batch] * 3
    src = write_moving_clip(tmp_path / "moving.y4m", width=32, height=24, frames=9)
    for clip_len, batch, want in [(2, 0, 2), (4, 0, 1), (8, 0, 1), (2, 3, 3), (4, 3, 3)]:
        p = plan([src], tmp_path / "b.nerv", EncodeConfig(model="latent-grid-kf", bpp=5.0, steps=1, device="cpu",
                                                          clip_len=clip_len, keyframe_codec="hevc", batch=batch))
        assert p.layout.clip_len == clip_len and p.fit.batch == want


def test_the_fit_rounds_the_weights_from_the_rate_terms_start_and_the_plain_grids_add_noise(tmp_path, monkeypatch):
    """latent-grid-kf's rate phase runs the network on rounded weights at every step (straight through):
    noise in their place let a low-rate fit's correction die (docs/benchmarks.md, "Rounding from the rate
    term's start, and two clips a step").  The plain grids keep noise until 85 % of the steps."""
    from nervcodec.quant import qat
    src = write_moving_clip(tmp_path / "moving.y4m", width=32, height=24, frames=9)
    real = qat.RateTerm.swap_in
    for model, extra, want in [("latent-grid-kf", dict(clip_len=4, keyframe_codec="hevc"), {False}),
                               ("latent-grid", {}, {True, False})]:
        flags = []

        def recording(self, m, noise=False, rows=None):
            flags.append(noise)
            return real(self, m, noise, rows)
        monkeypatch.setattr(qat.RateTerm, "swap_in", recording)
        p = plan([src], tmp_path / f"{model}.nerv", EncodeConfig(model=model, bpp=4.0, device="cpu", steps=40, **extra))
        fit_model(p)
        assert set(flags) == want and len(flags) >= 30, (model, flags)


def test_a_fit_that_ends_below_its_start_is_warned_of_with_both_likely_causes():
    """The warning names the learning rate and the fit's length: a 20-step grids fit at D = 2 ends below its
    keyframes' cross-fade because it is too short to recover from the rate term's start, not because of --lr."""
    from types import SimpleNamespace
    from nervcodec.codec.fitting import WORSE_THAN_START_DB, _quality_warnings
    plan = SimpleNamespace(keyframes=object(), fit=SimpleNamespace(lr=0.01))
    res = SimpleNamespace(start_psnr=30.0, final_psnr=30.0 - WORSE_THAN_START_DB - 0.5, steps=20)
    with pytest.warns(NervCodecWarning) as caught:
        msg, = _quality_warnings(plan, res)
    assert str(caught[0].message) == msg
    assert "keyframe cross-fade" in msg and "--lr 0.01" in msg and "too short (20 steps" in msg
    assert _quality_warnings(plan, SimpleNamespace(start_psnr=30.0, final_psnr=29.5, steps=20)) == ()
