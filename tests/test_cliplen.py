"""The clip length (keyframe interval) chosen by the planner from the keyframes' cross-fade."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, encode
from nervcodec.codec.plan import plan
from nervcodec.codec.cliplen import (DEFAULT_CLIP_LEN, SHORTER_CLIP_MARGIN_DB, STEP_MARGIN_POINTS, choose_clip_len,
                                    starting_psnr, step_margin_db)
from nervcodec.codec.keyframes import KeyframePlan
from nervcodec.codec.layout import plan_layout
from nervcodec.container import read_file, read_model_header
from nervcodec.io import write_video
from nervcodec.keyframes import yuv_to_rgb
from nervcodec.io.video import Frames

from conftest import make_moving_clip


def _plan_of(native) -> KeyframePlan:
    return KeyframePlan(b"", {}, "test", 0, native)


def _keyframes(info, frames, layout, offset: int = 0):
    """Every keyframe of ``layout`` "decoded" as its source planes plus ``offset`` code values."""
    return {(0, f): [np.clip(p[f].astype(np.int32) + offset, 0, 255).astype(np.uint8) for p in frames.planes]
            for f in layout.keyframe_indices(info, 0)}


def _brute_force(info, frames, d: int, native, cuts=()) -> float:
    """Mean per-frame PSNR-RGB of the keyframes and their cross-fade, written out frame by frame."""
    starts = [0, *cuts, info.num_frames]
    out = [np.zeros_like(p) for p in frames.planes]
    for s, e in zip(starts, starts[1:]):
        for f in range(s, e):
            c0 = s + (f - s) // d * d
            k1 = min(c0 + d, e - 1)
            for k in range(3):
                a = native[(0, c0)][k].astype(np.float64)
                b = native[(0, k1)][k].astype(np.float64)
                out[k][f] = native[(0, f)][k] if (0, f) in native else np.rint(a + (f - c0) / d * (b - a))
    ref = yuv_to_rgb(frames).astype(np.float64)
    got = yuv_to_rgb(Frames(tuple(out), frames.pix_fmt)).astype(np.float64)
    return float(np.mean([10 * np.log10(1.0 / ((x - y) ** 2).mean()) for x, y in zip(ref, got)]))


@pytest.mark.parametrize("d,cuts", [(8, ()), (4, ()), (3, ()), (4, (6,))])
def test_the_score_is_the_mean_psnr_rgb_of_the_keyframes_and_their_cross_fade(d, cuts):
    info, frames = make_moving_clip(width=32, height=24, frames=17)
    layout = plan_layout([info], d, "video", True, substitute=True, cuts=[cuts] if cuts else ())
    native = _keyframes(info, frames, layout, offset=2)
    got = starting_psnr([info], [frames], layout, native)
    assert got == pytest.approx(_brute_force(info, frames, d, native, cuts), abs=1e-9)
    # a still picture with exact keyframes: an exact cross-fade everywhere (the PSNR's 120 dB cap)
    still = Frames(tuple(np.repeat(p[:1], 17, axis=0) for p in frames.planes), frames.pix_fmt)
    assert starting_psnr([info], [still], layout, _keyframes(info, still, layout)) == pytest.approx(120.0)


def test_a_shorter_length_is_kept_only_when_it_leads_by_the_margin_with_its_own_keyframes(monkeypatch):
    info, moving = make_moving_clip(width=32, height=24, frames=17, speed=2.0)
    still = Frames(tuple(np.repeat(p[:1], 17, axis=0) for p in moving.planes), moving.pix_fmt)
    for frames, want in [(moving, 4), (still, 8)]:
        coded = []

        def code(layout, frames=frames):
            plan = _plan_of(_keyframes(info, frames, layout, offset=1))
            coded.append((layout.clip_len, plan))
            return plan

        choice = choose_clip_len((4, 8), lambda d: plan_layout([info], d, "video", True, substitute=True),
                                 code, [info], [frames])
        assert [d for d, _ in coded] == [8, 4] and [d for d, _ in choice.scores] == [8, 4]   # longest first
        assert choice.clip_len == want and choice.layout.clip_len == want
        assert choice.keyframes is dict(coded)[want]            # the file keeps the winner's coded keyframes
        lead = choice.scores[1][1] - choice.scores[0][1]
        assert lead > SHORTER_CLIP_MARGIN_DB if want == 4 else lead == 0.0
    # a lead under the margin keeps the longer clip
    scores = iter([30.0, 30.0 + SHORTER_CLIP_MARGIN_DB - 0.01, 30.0, 30.0 + SHORTER_CLIP_MARGIN_DB + 0.01])
    import nervcodec.codec.cliplen as cl
    monkeypatch.setattr(cl, "starting_psnr", lambda *a: next(scores))
    layouts = lambda d: plan_layout([info], d, "video", True, substitute=True)   # noqa: E731
    code = lambda lay: _plan_of({})   # noqa: E731
    assert choose_clip_len((8, 4), layouts, code, [info], [moving]).clip_len == 8
    assert choose_clip_len((8, 4), layouts, code, [info], [moving]).clip_len == 4


@pytest.fixture(scope="module")
def fast_clip(tmp_path_factory):
    work = tmp_path_factory.mktemp("cliplen")
    info, frames = make_moving_clip(width=48, height=32, frames=17, speed=2.0)
    src = work / "fast.y4m"
    write_video(src, info, frames)
    return work, src


def _encode(work, src, name, **kw):
    out = work / f"{name}.nerv"
    cfg = dict(model="dnerv", epochs=2, seed=0, device="cpu", force=True, verify=True)
    cfg.update(kw)
    return out, encode([src], out, EncodeConfig(**cfg))


def test_the_encoder_chooses_the_length_stores_it_and_decodes_what_it_reports(fast_clip):
    work, src = fast_clip
    out = work / "auto.nerv"
    r = CliRunner().invoke(cli, ["encode", str(src), str(out), "--bpp", "3.0", "--epochs", "2", "--device", "cpu",
                                 "--verify", "--json", "-y", "--clip-len", "auto"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    scores = dict(res["clip_len_scores"])
    chosen = res["clip_len"]
    assert list(scores) == [8, 4, 2] and chosen in (4, 2)        # 2 pixels a frame: shorter clips win
    assert scores[chosen] > scores[8] + SHORTER_CLIP_MARGIN_DB    # (counted in epochs: the constant margin)
    header = read_model_header(read_file(out).header)
    assert header.layout["clip_len"] == chosen and header.config.clip_len == chosen
    assert res["psnr"] == pytest.approx(res["verify"]["psnr_yuv"], abs=1e-9)   # what decode makes
    assert res["bpp"] <= 3.0 * 1.1
    _, fixed = _encode(work, src, "fixed", bpp=3.0, clip_len=chosen, verify=False)
    assert fixed.clip_len_scores == () and (work / "fixed.nerv").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("kw,want", [(dict(bpp=3.0, epochs=2, clip_len=8), 8), (dict(bpp=3.0, epochs=2, clip_len=4), 4),
                                     (dict(params=7000, epochs=2), DEFAULT_CLIP_LEN),
                                     (dict(bpp=3.0, epochs=2, keyframe_quality=30), DEFAULT_CLIP_LEN),
                                     (dict(bpp=3.0, epochs=2, holdout="every:2"), DEFAULT_CLIP_LEN),
                                     (dict(bpp=3.0, epochs=2, model="latent-grid"), 1),
                                     (dict(bpp=3.0, clip_len=8), 8)])
def test_the_length_is_chosen_only_when_asked_and_there_is_a_keyframe_budget(fast_clip, kw, want):
    """Fixed by the user, no budget to divide (--params, --keyframe-quality), a holdout, or a model
    without keyframes: the length given, the default, or single frames, and nothing weighed."""
    work, src = fast_clip
    p = plan([src], work / "plan.nerv", EncodeConfig(**{"device": "cpu", "force": True, **kw}))
    assert (p.layout.clip_len, p.clip_len_scores) == (want, ())


def test_the_keyframe_conditioned_grids_choose_among_the_same_lengths_by_the_same_rule(fast_clip):
    """latent-grid-kf weighs D-NeRV's candidates with the same keyframes and rule, and its config
    and layout carry the length chosen."""
    work, src = fast_clip
    cfg = dict(bpp=3.0, epochs=2, device="cpu", force=True)
    grid = plan([src], work / "grid.nerv", EncodeConfig(model="latent-grid-kf", **cfg))
    dnerv = plan([src], work / "dnerv.nerv", EncodeConfig(model="dnerv", **cfg))
    assert [d for d, _ in grid.clip_len_scores] == [8, 4, 2]
    assert grid.clip_len_scores == dnerv.clip_len_scores and grid.layout.clip_len == dnerv.layout.clip_len != 8
    assert grid.config.clip_len == grid.layout.clip_len


def test_the_command_line_refuses_a_length_that_is_neither_frames_nor_auto(fast_clip):
    work, src = fast_clip
    runner = CliRunner()
    r = runner.invoke(cli, ["encode", str(src), str(work / "bad.nerv"), "--clip-len", "four"])
    assert r.exit_code == 2 and "neither a whole number of frames nor auto" in r.output
    r = runner.invoke(cli, ["encode", str(src), str(work / "bad.nerv"), "--clip-len", "1"])
    assert r.exit_code != 0 and "clip length must be in 2..64" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_the_step_margin_passes_through_its_measurements_and_grows_with_the_passes():
    for passes, made_up in STEP_MARGIN_POINTS:
        assert step_margin_db(passes) == pytest.approx(made_up)
    grid = [1, 5, 11.5, 23, 50, 147, 200, 367, 1000, 10 ** 5]
    margins = [step_margin_db(p) for p in grid]
    # short fits: the margin measured in epochs; long ones: more, linear in the log of the passes
    assert margins == sorted(margins) and margins[:6] == [SHORTER_CLIP_MARGIN_DB] * 6 and margins[-1] > 10
    assert step_margin_db(1600) - step_margin_db(800) == pytest.approx(step_margin_db(800) - step_margin_db(400))


@pytest.mark.parametrize("steps,want", [(30, 4), (3000, 8)])
def test_under_a_step_budget_the_margin_follows_the_passes_of_the_longer_clip(fast_clip, monkeypatch, steps, want):
    """The same starting lead (2 dB for D = 4) wins under a short fit and loses under a long one: the
    longer clip's network has more passes over each frame to make up its worse start."""
    import nervcodec.codec.cliplen as cl
    work, src = fast_clip
    seen = []

    def score(infos, frames, layout, native):
        seen.append(len(layout.items(infos)))
        return 30.0 if layout.clip_len == 8 else 32.0

    monkeypatch.setattr(cl, "starting_psnr", score)
    p = plan([src], work / "plan.nerv", EncodeConfig(bpp=3.0, steps=steps, device="cpu", force=True))
    assert p.clip_len_scores == ((8, 30.0), (4, 32.0), (2, 32.0)) and p.layout.clip_len == want   # 2: no lead on 4
    passes = steps * p.fit.batch / seen[0]
    assert (step_margin_db(passes) < 2.0) == (want == 4)


def test_the_default_preset_chooses_too(fast_clip):
    """An effort preset (a step budget) weighs the candidates; --epochs uses the constant margin."""
    work, src = fast_clip
    p = plan([src], work / "plan.nerv", EncodeConfig(bpp=3.0, device="cpu", force=True))
    assert [d for d, _ in p.clip_len_scores] == [8, 4, 2] and p.fit.steps is not None


def test_the_margin_counts_the_passes_with_the_longer_clips_own_batch(monkeypatch):
    """A model whose batch follows the clip length (latent-grid-kf: two clips a step at D = 2, one at 4 and
    8) is weighed by the passes of the layout that a shorter clip must beat, with that layout's batch."""
    import nervcodec.codec.cliplen as cl
    info, moving = make_moving_clip(width=32, height=24, frames=17, speed=2.0)
    layouts = lambda d: plan_layout([info], d, "video", True, substitute=True)   # noqa: E731
    items = len(layouts(4).items([info]))
    steps = 10 ** 4                                      # a long fit: the margin grows with the passes
    lead = (step_margin_db(steps / items) + step_margin_db(3 * steps / items)) / 2
    asked = []

    def batch(d):
        asked.append(d)
        return {4: 1, 2: 3}[d]

    for per_clip, want in [(batch, 2), (lambda d: 3, 4)]:
        scores = iter([30.0, 30.0 + lead])
        monkeypatch.setattr(cl, "starting_psnr", lambda *a: next(scores))
        assert choose_clip_len((4, 2), layouts, lambda lay: _plan_of({}), [info], [moving], steps,
                               per_clip).clip_len == want
    assert asked == [4]                     # the longer clip's batch, not the candidate's
