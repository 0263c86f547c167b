"""The seed tasks: temporal interpolation (holdout), denoising (noise, reference, filters) and
inpainting (masks), each on tiny clips made here; and frame-rate up-conversion."""
from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, decode, encode
from nervcodec.codec.fitting import build_fit_data, fit_items, loss_mask
from nervcodec.codec.layout import Layout
from nervcodec.codec.plan import plan
from nervcodec.container import SECTION_KEYFRAMES, SECTION_WEIGHTS, read_file
from nervcodec.errors import ConfigError, FormatError
from nervcodec.fit.fit import batch_loss
from nervcodec.io import read_video, write_video
from nervcodec.io.video import Frames, VideoInfo, pixel_format
from nervcodec.metrics.tasks import neighbour_average, score_tasks
from nervcodec.model.dnerv import DNeRV, plan_dnerv
from nervcodec.tasks import add_noise, apply_filter, fill_holes, parse_holdout, parse_mask, parse_noise
from nervcodec.tasks.masks import chroma_holes, disperse_boxes

from conftest import make_clip, make_moving_clip

DN = dict(model="dnerv", params=7000, keyframe_quality=40, epochs=2, device="cpu", clip_len=4)
NV = dict(model="nerv", params=2500, epochs=2, device="cpu")


def run(*args, ok=True):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def _write(tmp_path, name, info, frames):
    path = tmp_path / f"{name}.y4m"
    write_video(path, info, frames)
    return path


# ---------------------------------------------------------------- holdout


def test_holdout_spellings_and_splits():
    assert parse_holdout("every:2") == parse_holdout("1_1_2") == parse_holdout("split:1_1_2")
    h = parse_holdout("2_3_4")
    assert h.seen_frames(8) == [0, 1, 4, 5] and h.unseen_frames(8) == [3, 7]   # position 2: neither
    assert parse_holdout("every:3").unseen_frames(7) == [1, 2, 4, 5] and parse_holdout("every:3").last_seen(7) == 6
    for bad in ("every:0", "3_2_4", "1_1", "odd", "0_0_2"):
        with pytest.raises(ConfigError):
            parse_holdout(bad)


def test_holdout_exactly_the_seen_frames_reach_the_loss(tmp_path):
    src = _write(tmp_path, "c", *make_clip(width=32, height=24, frames=9))
    p = plan([src], tmp_path / "n.nerv", EncodeConfig(holdout="every:2", **NV))
    items = fit_items(p)
    fitted = {f for it, row in zip(items, loss_mask(p.layout, p.infos, items)) for f, m in zip(it.frames, row) if m}
    assert fitted == {0, 2, 4, 6, 8} and len(items) == 5          # NeRV: held-out frames are not even items
    p = plan([src], tmp_path / "d.nerv", EncodeConfig(holdout="every:2", **DN))
    items = fit_items(p)
    fitted = {f for it, row in zip(items, loss_mask(p.layout, p.infos, items)) for f, m in zip(it.frames, row) if m}
    assert fitted == {2, 6}                                          # D-NeRV: seen minus substituted keyframes
    assert p.layout.keyframe_indices(p.infos[0], 0) == [0, 4, 8]
    assert all(v == 0 for f in (1, 3, 5, 7) for v in (p.seen_frames[0].planes[0][f].max(),))


def test_holdout_moves_the_last_keyframe_to_the_last_seen_frame_and_refuses_held_out_keyframes(tmp_path):
    src = _write(tmp_path, "c", *make_clip(width=32, height=24, frames=10))
    p = plan([src], tmp_path / "d.nerv", EncodeConfig(holdout="every:2", **DN))
    v = p.infos[0]
    assert p.layout.keyframe_indices(v, 0) == [0, 4, 8] and p.layout.num_keyframes(v, 0) == 3
    assert p.layout.clip_keyframes(v, 0, 2) == (8, 8) and not p.layout.is_keyframe(v, 0, 9)
    with pytest.raises(ConfigError, match="multiple of 3"):
        plan([src], tmp_path / "e.nerv", EncodeConfig(holdout="every:3", **DN))
    lay = Layout.from_dict(p.layout.to_dict())
    assert lay == p.layout and lay.to_dict()["holdout"] == "every:2"
    with pytest.raises(FormatError):
        Layout.from_dict({**p.layout.to_dict(), "holdout": "every:0"})
    assert "holdout" not in dataclasses.replace(p.layout, holdout=None).to_dict()   # old headers unchanged


@pytest.mark.parametrize("opts", [DN, NV], ids=["dnerv", "nerv"])
def test_holdout_a_held_out_frame_replaced_by_noise_does_not_change_the_file(tmp_path, opts):
    info, fr = make_moving_clip(width=32, height=24, frames=9)
    noisy = [p.copy() for p in fr.planes]
    rng = np.random.default_rng(1)
    for p in noisy:
        p[[1, 3, 5, 7]] = rng.integers(0, 256, p[[1, 3, 5, 7]].shape)
    a = _write(tmp_path / "a", "clip", info, fr) if (tmp_path / "a").mkdir() is None else None
    b = _write(tmp_path / "b", "clip", info, Frames(tuple(noisy), fr.pix_fmt)) if (tmp_path / "b").mkdir() is None \
        else None
    files = []
    for src in (a, b):
        out = src.parent / "o.nerv"
        encode([src], out, EncodeConfig(holdout="every:2", **opts))
        files.append(read_file(out))
    assert files[0].section(SECTION_WEIGHTS) == files[1].section(SECTION_WEIGHTS)
    if opts is DN:
        assert files[0].section(SECTION_KEYFRAMES) == files[1].section(SECTION_KEYFRAMES)
    # and without the holdout the noise does change the file (so the comparison above can fail)
    out = b.parent / "full.nerv"
    encode([b], out, EncodeConfig(**opts))
    assert read_file(out).section(SECTION_WEIGHTS) != files[1].section(SECTION_WEIGHTS)


def test_holdout_verify_reports_seen_unseen_and_the_neighbour_baseline(tmp_path):
    src = _write(tmp_path, "c", *make_moving_clip(width=32, height=24, frames=9))
    res = encode([src], tmp_path / "o.nerv", EncodeConfig(holdout="every:2", verify=True, **DN))
    t = res.verify.tasks
    assert t.frames_seen == 5 and t.frames_unseen == 4
    assert all(np.isfinite([t.psnr_rgb_seen, t.psnr_rgb_unseen, t.psnr_rgb_unseen_neighbours]))
    assert t.psnr_rgb_seen > t.psnr_rgb_unseen   # keyframes are seen and shown as coded


def test_neighbour_average_and_scores_on_known_frames():
    fmt = pixel_format("gray")
    ramp = np.stack([np.full((4, 6), 10 * i, np.uint8) for i in range(5)])
    fr = Frames((ramp,), fmt)
    avg = neighbour_average(fr, [0, 2, 4], [1, 3])
    assert (avg.planes[0] == ramp[[1, 3]]).all()                   # a linear ramp is its neighbours' mean
    last = neighbour_average(fr, [0, 2], [3, 4])
    assert (last.planes[0] == ramp[[2, 2]]).all()                  # past the last seen frame: the last one
    holes = np.zeros((5, 4, 6), bool)
    holes[:, 1:3, 2:4] = True
    broken = ramp.copy()
    broken[holes] = 255
    s = score_tasks(fr, Frames((broken,), fmt), seen=[0, 2, 4], unseen=[1, 3], holes=holes)
    assert s.psnr_rgb_visible == 100.0 and s.psnr_rgb_holes < 10 and s.psnr_rgb_unseen_neighbours == 100.0


# ---------------------------------------------------------------- noise and denoising


def test_salt_and_pepper_corrupts_exactly_the_stated_samples():
    info, fr = make_clip(width=40, height=30, frames=4)
    noisy, report, where = add_noise(fr, parse_noise("saltpepper:0.2"), seed=3)
    y, ny = fr.planes[0], noisy.planes[0]
    assert report["corrupted_luma_samples"] == int(where.sum()) == report["salt"] + report["pepper"]
    assert 0.15 < where.mean() < 0.25
    assert set(np.unique(ny[where])) <= {0, 255} and (ny[~where] == y[~where]).all()
    assert all((a == b).all() for a, b in zip(fr.planes[1:], noisy.planes[1:]))     # chroma untouched
    assert not (where[0] == where[1]).all()                                          # a new draw every frame
    again, _, where2 = add_noise(fr, parse_noise("saltpepper:0.2"), seed=3)
    assert (where2 == where).all() and all((a == b).all() for a, b in zip(again.planes, noisy.planes))
    assert not (add_noise(fr, parse_noise("saltpepper:0.2"), seed=4)[2] == where).all()
    white = add_noise(fr, parse_noise("white:0.1"), seed=0)
    assert set(np.unique(white[0].planes[0][white[2]])) == {255} and white[1]["pepper"] == 0


def test_gaussian_and_patch_noise_are_seeded_and_bounded():
    info, fr = make_clip(width=40, height=30, frames=3)
    g, rep, where = add_noise(fr, parse_noise("gaussian:10"), seed=0)
    assert where.all() and rep["changed_samples"][0] > 0.8 * fr.planes[0].size
    assert abs(float(np.std(g.planes[0].astype(float) - fr.planes[0])) - 10) < 1.5
    p, rep, where = add_noise(fr, parse_noise("patches:2"), seed=0)
    assert rep["patch_side"] == 3 and 0 < where[0].sum() <= 2 * 9
    assert (p.planes[0][~where] == fr.planes[0][~where]).all()
    for bad in ("saltpepper:0", "saltpepper:1.5", "gaussian:-1", "patches:1.5", "pink:0.1", "saltpepper"):
        with pytest.raises(ConfigError):
            parse_noise(bad)


def test_median_filter_removes_an_impulse_and_gaussian_keeps_a_constant():
    fmt = pixel_format("gray")
    flat = np.full((1, 9, 9), 100, np.uint8)
    spike = flat.copy()
    spike[0, 4, 4] = 255
    assert (apply_filter(Frames((spike,), fmt), "median3").planes[0] == 100).all()
    assert (apply_filter(Frames((flat,), fmt), "gaussian").planes[0] == 100).all()
    with pytest.raises(ConfigError):
        apply_filter(Frames((flat,), fmt), "bilateral")


def test_a_short_fit_of_a_noisy_smooth_clip_beats_the_noisy_input_against_the_clean_clip(tmp_path):
    fmt = pixel_format("yuv420p")
    w, h, n = 32, 24, 4
    planes = []
    for (ph, pw) in fmt.plane_shapes(w, h):
        yy, xx = np.mgrid[0:ph, 0:pw].astype(float)
        base = 128 + 60 * np.sin(xx / pw * np.pi) * np.cos(yy / ph * np.pi)
        planes.append(np.repeat(np.rint(base)[None], n, axis=0).astype(np.uint8))
    info = VideoInfo(w, h, fmt, Fraction(25), n, name="smooth")
    clean = _write(tmp_path, "clean", info, Frames(tuple(planes), fmt))
    noisy = tmp_path / "noisy.y4m"
    report = json.loads(run("noise", clean, noisy, "--noise", "saltpepper:0.1", "--seed", "0", "--json").output)
    assert report["spec"] == "saltpepper:0.1" and report["corrupted_luma_samples"] > 0
    res = encode([noisy], tmp_path / "o.nerv", EncodeConfig(model="nerv", params=2500, epochs=300, device="cpu",
                                                            verify=True, reference=str(clean)))
    t = res.verify.tasks
    assert res.verify.reference == str(clean) and t.psnr_rgb_input == pytest.approx(report["psnr_rgb"])
    assert t.psnr_rgb >= t.psnr_rgb_input + 3.0, (t.psnr_rgb, t.psnr_rgb_input)


def test_noise_command_refuses_to_overwrite_and_reference_needs_verify(tmp_path):
    src = _write(tmp_path, "c", *make_clip(width=16, height=16, frames=2))
    out = tmp_path / "n.y4m"
    run("noise", src, out, "--noise", "black:0.1")
    res = run("noise", src, out, "--noise", "black:0.1", ok=False)
    assert res.exit_code != 0 and "--force" in res.output and "Traceback" not in res.output
    res = run("encode", src, tmp_path / "o.nerv", "--reference", src, ok=False)
    assert res.exit_code != 0 and "--verify" in res.output
    other = _write(tmp_path, "other", *make_clip(width=16, height=16, frames=3))
    res = run("encode", src, tmp_path / "o.nerv", "--verify", "--reference", other, "--model", "nerv", ok=False)
    assert res.exit_code != 0 and "does not match" in res.output and not (tmp_path / "o.nerv").exists()


# ---------------------------------------------------------------- masks and inpainting


def test_masks_have_the_reference_shapes():
    holes = parse_mask("disperse:10").holes(0, 100, 120)
    assert holes.sum() == 5 * 10 * 10 and len(disperse_boxes(100, 120, 10)) == 5
    assert parse_mask("central").holes(3, 64, 96).sum() == (64 // 4) * (96 // 4)
    with pytest.raises(ConfigError, match="at most disperse:"):
        disperse_boxes(144, 176, 50)
    assert parse_mask("disperse").holes(0, 144, 176).sum() == 5 * 11 * 11
    c = chroma_holes(np.pad(np.ones((1, 1), bool), ((1, 2), (2, 1))), (1, 1))     # luma (1, 2) -> chroma (0, 1)
    assert c.shape == (2, 2) and c.sum() == 1 and c[0, 1]
    with pytest.raises(ConfigError):
        parse_mask("no-such-thing")


def test_png_masks_white_is_a_hole(tmp_path):
    import imageio.v3 as iio
    img = np.zeros((24, 32), np.uint8)
    img[5:9, 10:20] = 255
    iio.imwrite(tmp_path / "m.png", img)
    m = parse_mask(str(tmp_path / "m.png"))
    assert (m.holes(0, 24, 32) == (img > 0)).all()
    folder = tmp_path / "masks"
    folder.mkdir()
    for i in range(3):
        iio.imwrite(folder / f"{i}.png", np.roll(img, i, axis=1))
    m = parse_mask(str(folder))
    assert (m.holes(2, 24, 32) == (np.roll(img, 2, axis=1) > 0)).all()
    with pytest.raises(ConfigError, match="3 PNG files for 5 frames"):
        m.check(32, 24, 5)


def test_fill_depends_only_on_the_visible_pixels():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 20, 30)).astype(np.uint8)
    holes = np.zeros((20, 30), bool)
    holes[4:12, 6:20] = True
    b = a.copy()
    b[:, holes] = 255 - b[:, holes]
    fa, fb = fill_holes(a, holes), fill_holes(b, holes)
    assert (fa == fb).all() and (fa[:, ~holes] == a[:, ~holes]).all()
    assert (fill_holes(np.full((20, 30), 77, np.uint8), holes) == 77).all()


def test_the_loss_gradient_is_exactly_zero_inside_the_holes(tmp_path):
    src = _write(tmp_path, "c", *make_clip(width=32, height=24, frames=4))
    p = plan([src], tmp_path / "o.nerv", EncodeConfig(mask="central", **NV))
    data = build_fit_data(p.seen_frames, p.infos, p.layout, fit_items(p), 24, 32, mask=p.mask)
    holes = torch.from_numpy(p.mask.holes(0, 24, 32))
    assert (data.pixels[:, 0] == (~holes).to(torch.uint8)).all()
    out = torch.rand(4, 1, 3, 24, 32, requires_grad=True)
    idx = torch.arange(4)
    for loss in ("l2", "fusion"):
        out.grad = None
        batch_loss(out, data, idx, loss)[0].backward()
        g = out.grad[:, 0]
        assert (g[:, :, holes] == 0).all(), loss                  # every plane, every hole pixel: exactly 0
        assert (g[:, 0, ~holes] != 0).float().mean() > 0.9, loss


def test_a_colour_painted_only_inside_the_holes_does_not_reach_the_file(tmp_path):
    info, fr = make_moving_clip(width=32, height=24, frames=5)
    holes = parse_mask("central").holes(0, 24, 32)
    ch = chroma_holes(holes, (1, 1))
    painted = [p.copy() for p in fr.planes]
    painted[0][:, holes], painted[1][:, ch], painted[2][:, ch] = 235, 255, 255    # saturated magenta-white
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _write(tmp_path / "a", "clip", info, fr)
    b = _write(tmp_path / "b", "clip", info, Frames(tuple(painted), fr.pix_fmt))
    files = []
    for src in (a, b):
        encode([src], src.parent / "o.nerv", EncodeConfig(mask="central", **DN))
        files.append(read_file(src.parent / "o.nerv"))
    assert files[0].section(SECTION_KEYFRAMES) == files[1].section(SECTION_KEYFRAMES)
    assert files[0].section(SECTION_WEIGHTS) == files[1].section(SECTION_WEIGHTS)
    decode(tmp_path / "b" / "o.nerv", tmp_path / "dec.y4m", device="cpu")
    _, dec = read_video(tmp_path / "dec.y4m")
    assert dec.planes[1][:, ch].mean() < 200 and dec.planes[2][:, ch].mean() < 200   # no magenta in the holes
    res = encode([b], tmp_path / "open.nerv", EncodeConfig(**DN))                     # without the mask it is seen
    assert read_file(tmp_path / "open.nerv").section(SECTION_KEYFRAMES) != files[1].section(SECTION_KEYFRAMES)
    assert res.bytes > 0


def test_mask_verify_reports_holes_and_outside(tmp_path):
    src = _write(tmp_path, "c", *make_clip(width=32, height=24, frames=4))
    res = encode([src], tmp_path / "o.nerv", EncodeConfig(mask="central", verify=True, **NV))
    t = res.verify.tasks
    assert t.psnr_rgb_holes is not None and t.psnr_rgb_visible is not None and t.psnr_rgb_unseen is None


# ---------------------------------------------------------------- frame-rate up-conversion


def test_dnerv_phase_zero_is_the_plain_forward_and_a_phase_moves_the_output():
    torch.manual_seed(0)
    m = DNeRV(plan_dnerv(16, 16, 3, 5400, clip_len=4)).eval()
    with torch.no_grad():
        for p in m.head.parameters():
            p.normal_(0, 0.1)
        t, kf = torch.rand(1, 4), torch.rand(1, 2, 3, 16, 16)
        assert torch.equal(m(t, kf), m(t, kf, 0.0))
        assert not torch.allclose(m(t, kf), m(t, kf, 0.5))


@pytest.mark.parametrize("opts", [DN, NV], ids=["dnerv", "nerv"])
def test_fps_scale_interleaves_frames_between_the_decoded_ones(tmp_path, opts):
    src = _write(tmp_path, "c", *make_moving_clip(width=32, height=24, frames=6))
    nerv = tmp_path / "o.nerv"
    encode([src], nerv, EncodeConfig(**opts))
    run("decode", nerv, "-o", tmp_path / "one.y4m", "--device", "cpu", "-q")
    run("decode", nerv, "-o", tmp_path / "two.y4m", "--device", "cpu", "--fps-scale", "2", "-q")
    i1, one = read_video(tmp_path / "one.y4m")
    i2, two = read_video(tmp_path / "two.y4m")
    assert i2.num_frames == 12 and Fraction(i2.fps) == 2 * Fraction(i1.fps)
    assert all((a == b[0::2]).all() for a, b in zip(one.planes, two.planes))       # phase 0: the frames themselves
    assert not (two.planes[0][1] == two.planes[0][0]).all()                        # in-between frames are new
    assert (two.planes[0][11] == two.planes[0][10]).all()                          # past the end: the last frame
    res = run("decode", nerv, "-o", tmp_path / "x.y4m", "--fps-scale", "0", ok=False)
    assert res.exit_code != 0 and "--fps-scale" in res.output


# ---------------------------------------------------------------- figures


def test_figure_panels_are_placed_pixel_for_pixel():
    from nervcodec.tasks.figures import compose_figure, panel_box
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    b = a.copy()
    b[4:10, 20:28] = 0
    img = compose_figure([a, a, b], ["source", "same", "damaged"])
    s = 256 // 32
    top, left, h, w = panel_box(0, 2, 24, 32)
    assert (h, w) == (24 * s, 32 * s)
    assert (img[top:top + h, left:left + w] == np.repeat(np.repeat(b, s, 0), s, 1)).all()
    top, left, h, w = panel_box(2, 1, 24, 32)
    assert (img[top:top + h, left:left + w] == 0).all()                 # identical to the source: no error
    top, left, h, w = panel_box(2, 2, 24, 32)
    err = img[top:top + h, left:left + w]
    assert err[4 * s:10 * s, 20 * s:28 * s].min() > 0 and err[:4 * s].max() == 0
    last = panel_box(2, 2, 24, 32)
    assert img.shape == (last[0] + last[2], last[1] + last[3], 3)


def test_encode_figure_and_bench_figures_write_pngs_of_the_expected_size(tmp_path):
    import imageio.v3 as iio
    from nervcodec.tasks.figures import panel_box
    src = _write(tmp_path, "c", *make_moving_clip(width=32, height=24, frames=5))
    png = tmp_path / "task.png"
    encode([src], tmp_path / "o.nerv", EncodeConfig(mask="central", verify=True, figure=str(png), **NV))
    last = panel_box(2, 2, 24, 32)                                    # source, masked input, output
    assert iio.imread(png).shape == (last[0] + last[2], last[1] + last[3], 3)
    out = tmp_path / "bench"
    run("bench", src, "--crf", "35", "--bpp", "6", "--model", "nerv", "--epochs", "1", "--device", "cpu",
        "--out", out, "--figures", "-q")
    last = panel_box(2, 3, 24, 32)                                    # source, h264, hevc, nervcodec
    assert iio.imread(out / "figures" / "c.png").shape == (last[0] + last[2], last[1] + last[3], 3)
    assert json.loads((out / "results.json").read_text())["clips"][0]["figure"] == "figures/c.png"
    assert not (out / "c" / "decoded").exists()
    res = run("bench", src, "--no-nerv", "--figures", ok=False)
    assert res.exit_code != 0 and "--out" in res.output


def test_bench_reference_measures_every_codec_against_the_clean_clip(tmp_path):
    info, fr = make_clip(width=32, height=24, frames=4)
    clean = _write(tmp_path, "clean", info, fr)
    noisy = tmp_path / "noisy.y4m"
    run("noise", clean, noisy, "--noise", "gaussian:30")
    res = [json.loads(run("bench", noisy, "--crf", "20", "--no-nerv", "--baseline", "h264", "--json", *extra).stdout)
           for extra in ([], ["--reference", clean])]
    own, against = (r["points"][0]["psnr_rgb"] for r in res)
    assert own > against + 3          # h264 keeps the noise: close to the noisy input, far from the clean clip
    assert res[1]["settings"]["reference"] == str(clean)
    base = res[1]["clips"][0]["task_baselines"]
    assert set(base) == {"input itself", "3x3 median filter", "Gaussian filter (sigma 1)"}
    assert base["Gaussian filter (sigma 1)"] > base["input itself"] + 3     # sigma-30 noise: any smoothing helps
    other = _write(tmp_path, "other", *make_clip(width=32, height=24, frames=3))
    bad = run("bench", noisy, "--no-nerv", "--reference", other, ok=False)
    assert bad.exit_code != 0 and "does not match" in bad.output


def test_a_rate_below_the_keyframes_says_so_without_negative_numbers():
    from nervcodec.codec.rate import params_for_bytes
    from nervcodec.model import model_spec
    with pytest.raises(ConfigError, match="does not even cover the keyframes") as exc:
        params_for_bytes(-58, None, model_spec("dnerv"))
    assert not any(c.isdigit() for c in str(exc.value))


def test_bench_holdout_scores_nervcodec_on_unseen_frames_next_to_the_neighbour_average(tmp_path):
    src = _write(tmp_path, "c", *make_moving_clip(width=32, height=24, frames=5))
    res = run("bench", src, "--holdout", "every:2", "--baseline", "h264", "--crf", "30", "--bpp", "6",
              "--model", "nerv", "--epochs", "1", "--device", "cpu")
    assert "unseen" in res.stdout and "neighbour average (unseen frames)" in res.stdout
    res = run("bench", src, "--holdout", "every:2", "--baseline", "h264", "--crf", "30", "--bpp", "6",
              "--model", "nerv", "--epochs", "1", "--device", "cpu", "--json")
    d = json.loads(res.stdout)
    nerv = [p for p in d["points"] if p["codec"] == "nervcodec"][0]
    assert nerv["tasks"]["frames_unseen"] == 2 and nerv["tasks"]["psnr_rgb_unseen"] is not None
    assert "neighbour average (unseen frames)" in d["clips"][0]["task_baselines"]
    assert run("bench", src, "--holdout", "every:0", ok=False).exit_code != 0
