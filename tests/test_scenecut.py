"""Scene cuts: found in the source, stored in the layout, and no clip or keyframe blend spans one."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, encode
from nervcodec.codec.layout import Layout, plan_layout
from nervcodec.codec.scenecut import CUT_MIN_DIFF, cuts_from_differences, find_cuts, frame_differences
from nervcodec.container import read_file, read_model_header
from nervcodec.errors import ConfigError, FormatError
from nervcodec.io import write_video
from nervcodec.io.video import Frames, VideoInfo, pixel_format

from conftest import assert_ranges_equal_the_full_decode, decoded_psnr_yuv, load_benchmark, make_clip, make_moving_clip


def two_scenes(cut: int = 11, frames: int = 20, pix_fmt: str = "yuv420p"):
    """Frames 0..cut-1: a translating pattern; cut..frames-1: another picture, slowly changing."""
    info_a, a = make_moving_clip(width=32, height=24, frames=cut, speed=0.5)
    info_b, b = make_clip(width=32, height=24, frames=frames - cut, seed=3)
    fmt = pixel_format(pix_fmt)
    planes = tuple(np.concatenate([pa, 255 - pb]).astype(np.uint16) * (fmt.max_value // 255)
                   for pa, pb in zip(a.planes, b.planes))
    planes = tuple(p.astype(fmt.dtype) for p in planes)
    return VideoInfo(32, 24, fmt, Fraction(25), frames, name="scenes"), Frames(planes, fmt)


# ----------------------------------------------------------------------------- detection


def test_a_hard_cut_is_found_and_motion_flashes_and_noise_are_not():
    calm = [3.0] * 9
    assert cuts_from_differences(calm[:4] + [80.0] + calm[5:]) == (5,)      # diff[4]: frame 4 -> 5
    assert cuts_from_differences([22.0, 25.0, 21.0, 24.0, 23.0]) == ()       # fast motion: all large
    assert cuts_from_differences([3.0, 3.0, 70.0, 75.0, 3.0, 3.0]) == ()     # a flash: two large in a row
    assert cuts_from_differences([1.0, 1.0, CUT_MIN_DIFF - 1, 1.0, 1.0]) == ()  # small change, however sudden
    assert cuts_from_differences([3.0, 3.0, 21.0, 10.0, 3.0]) == (3,)        # twice the larger neighbour
    assert cuts_from_differences([3.0, 3.0, 19.0, 10.0, 3.0]) == ()
    # a scene of one frame is merged into the one before; so is a cut on the last frame
    assert cuts_from_differences([3.0, 80.0, 3.0, 3.0, 3.0, 3.0, 90.0]) == (2,)
    assert cuts_from_differences([80.0, 3.0, 3.0, 3.0]) == ()                # the first scene would be 1 frame


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_the_cut_of_a_two_scene_clip_is_found_at_its_frame(pix_fmt):
    info, frames = two_scenes(cut=11, pix_fmt=pix_fmt)
    d = frame_differences(frames, info)
    assert d.shape == (19,) and d[10] > 2 * max(d[9], d[11]) and d[10] > CUT_MIN_DIFF
    assert find_cuts(frames, info) == (11,)
    info_m, moving = make_moving_clip(frames=40, speed=3.0)      # motion alone is no cut
    assert find_cuts(moving, info_m) == ()


# ----------------------------------------------------------------------------- layout


def _info(n: int) -> VideoInfo:
    return VideoInfo(16, 16, pixel_format("yuv420p"), Fraction(25), n)


def test_clips_and_keyframes_restart_at_every_cut():
    v = _info(30)
    lay = plan_layout([v], 8, "video", True, substitute=True, cuts=[(11, 13)])
    assert lay.keyframe_indices(v, 0) == [0, 8, 10, 11, 12, 13, 21, 29] and lay.num_keyframes(v, 0) == 8
    assert [f for f in range(30) if lay.is_keyframe(v, 0, f)] == lay.keyframe_indices(v, 0)
    items = lay.items([v])
    assert [it.keyframes for it in items] == [(0, 8), (8, 10), (11, 12), (13, 21), (21, 29), (29, 29)]
    for it in items:   # every real frame of a clip lies in its keyframes' scene
        scene = [f for f, ok in zip(it.frames, it.valid) if ok]
        assert all(it.keyframes[0] <= f <= it.keyframes[1] for f in scene)
        assert not any(it.keyframes[0] < c <= max(scene) for c in (11, 13))
    covered = sorted(f for it in items for f, ok in zip(it.frames, it.valid) if ok)
    assert covered == list(range(30))                                # every frame exactly once
    for a, b in [(0, 30), (9, 12), (11, 12), (12, 22), (29, 30)]:      # a range's clips: those holding its frames
        got = {it.clip for it in lay.items([v], frames=(a, b))}
        assert got == {it.clip for it in items if any(ok and a <= f < b for f, ok in zip(it.frames, it.valid))}


def test_a_layout_without_cuts_is_unchanged_and_one_with_cuts_round_trips():
    v = _info(30)
    plain = plan_layout([v], 8, "video", True, substitute=True, cuts=[()])
    assert plain == plan_layout([v], 8, "video", True, substitute=True) and "cuts" not in plain.to_dict()
    assert plain.keyframe_indices(v, 0) == [0, 8, 16, 24, 29]
    cut = plan_layout([v], 8, "video", True, substitute=True, cuts=[(11,)])
    assert cut.to_dict()["cuts"] == [[11]] and Layout.from_dict(json.loads(json.dumps(cut.to_dict()))) == cut


@pytest.mark.parametrize("cuts", [[[5, 3]], [[0]], [[3, 3]], [["3"]], [[True]], [3], "3"])
def test_a_header_with_bad_cuts_is_refused(cuts):
    d = {"clip_len": 8, "patch": [16, 16], "time": "video", "cuts": cuts}
    with pytest.raises(FormatError):
        Layout.from_dict(d)


def test_cuts_must_fit_the_videos_and_do_not_go_with_a_holdout():
    lay = Layout.from_dict({"clip_len": 8, "patch": [16, 16], "time": "video", "cuts": [[40]]})
    with pytest.raises(FormatError, match="scene cuts"):
        lay.check_videos([_info(30)])
    with pytest.raises(FormatError, match="scene cuts"):
        lay.check_videos([_info(50), _info(50)])
    with pytest.raises(FormatError):
        Layout.from_dict({"clip_len": 8, "patch": [16, 16], "time": "video", "holdout": "every:2", "cuts": [[3]]})
    from nervcodec.tasks import parse_holdout
    with pytest.raises(ConfigError, match="holdout"):
        plan_layout([_info(30)], 8, "video", True, holdout=parse_holdout("every:2"), cuts=[(11,)])


# ----------------------------------------------------------------------------- encode and decode


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    info, frames = two_scenes()
    src = d / "scenes.y4m"
    write_video(src, info, frames)
    common = dict(bpp=3.0, steps=40, clip_len=4, device="cpu", seed=0)
    with_cuts = encode([src], d / "cut.nerv", EncodeConfig(**common, verify=True))
    without = encode([src], d / "plain.nerv", EncodeConfig(**common, scenecut=False))
    return d, src, frames, with_cuts, without


def test_the_encoder_restarts_the_clips_at_the_cut_and_scores_what_decode_makes(scene_files):
    d, _, frames, res, plain = scene_files
    assert res.scene_cuts == ((11,),) and plain.scene_cuts == ()
    layout = read_model_header(read_file(d / "cut.nerv").header).layout
    assert layout["cuts"] == [[11]] and "cuts" not in read_model_header(read_file(d / "plain.nerv").header).layout
    n, psnr = decoded_psnr_yuv(d / "cut.nerv", d / "cut.y4m", frames)
    assert n == 20 and res.verify is not None and abs(psnr - res.verify.psnr_yuv) < 1e-6


def _worst_frame_psnr_y(nerv, out, frames) -> float:
    from nervcodec.codec import decode
    from nervcodec.io import read_video
    decode(nerv, out, device="cpu", force=True)
    _, got = read_video(out)
    err = (got.planes[0].astype(np.float64) - frames.planes[0].astype(np.float64)) ** 2
    return float(10 * np.log10(255.0 ** 2 / err.mean(axis=(1, 2))).min())


def test_restarting_at_the_cut_beats_blending_across_it(scene_files):
    d, _, frames, res, plain = scene_files
    _, with_cuts = decoded_psnr_yuv(d / "cut.nerv", d / "a.y4m", frames)
    _, across = decoded_psnr_yuv(d / "plain.nerv", d / "b.y4m", frames)
    worst_cut = _worst_frame_psnr_y(d / "cut.nerv", d / "a.y4m", frames)
    worst_across = _worst_frame_psnr_y(d / "plain.nerv", d / "b.y4m", frames)
    assert with_cuts > across + 1.0 and worst_cut > worst_across + 5.0, (with_cuts, across, worst_cut, worst_across)


def test_random_access_across_the_cut_equals_the_full_decode(scene_files):
    d = scene_files[0]
    assert_ranges_equal_the_full_decode(d / "cut.nerv", d, {"9:13": (9, 13), "11:12": (11, 12), "12:20": (12, 20),
                                                            "0:11": (0, 11)}, batch=1)


def test_no_scenecut_on_the_command_line(scene_files, tmp_path):
    _, src, *_ = scene_files
    out = tmp_path / "o.nerv"
    r = CliRunner().invoke(cli, ["encode", str(src), str(out), "--bpp", "3", "--steps", "3", "--clip-len", "4",
                                 "--device", "cpu", "--no-scenecut", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["scene_cuts"] == []
    r = CliRunner().invoke(cli, ["encode", str(src), str(out), "--bpp", "3", "--steps", "3", "--clip-len", "4",
                                 "--device", "cpu", "--json", "-y"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["scene_cuts"] == [[11]]
    r = CliRunner().invoke(cli, ["info", str(out)])
    assert '"cuts": [[11]]' in r.output


def test_keyframe_conditioned_latent_grids_restart_at_the_cut_too(scene_files, tmp_path):
    _, src, frames, *_ = scene_files
    out = tmp_path / "kf.nerv"
    res = encode([src], out, EncodeConfig(model="latent-grid-kf", bpp=3.0, steps=20, clip_len=4, gop=4,
                                          device="cpu", verify=True))
    assert res.scene_cuts == ((11,),)
    n, psnr = decoded_psnr_yuv(out, tmp_path / "kf.y4m", frames)
    assert n == 20 and abs(psnr - res.verify.psnr_yuv) < 1e-6
    assert_ranges_equal_the_full_decode(out, tmp_path, {"10:13": (10, 13)})


def test_the_crossfade_benchmark_scores_the_layout_with_and_without_the_cuts(tmp_path):
    module = load_benchmark("crossfade")
    info, frames = two_scenes()
    src = tmp_path / "scenes.y4m"
    write_video(src, info, frames)
    rows = module.crossfade(str(src), 1.0, [4])
    without, with_cuts = rows
    assert without["cuts"] == [] and with_cuts["cuts"] == [11]
    assert with_cuts["keyframes"] == without["keyframes"] + 1 == 7     # 0 4 8 10 | 11 15 19 against 0 4 8 12 16 19
    assert with_cuts["keyframe_bpp"] <= 1.0 and without["keyframe_bpp"] <= 1.0
    assert with_cuts["crossfade_psnr_rgb"] > without["crossfade_psnr_rgb"] + 1.0, rows   # measured +1.8 dB
