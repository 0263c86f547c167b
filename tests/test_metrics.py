"""Tests of nervcodec.metrics against hand-computed values.

Clips are generated here (a few frames, tiny sizes) so the file runs in seconds.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from nervcodec.errors import InputError
from nervcodec.io import Frames, VideoInfo, pixel_format, write_video
from nervcodec.metrics import (PSNR_CAP_DB, bd_delta, bits_per_pixel, compare_videos, curve_overlap, file_bpp,
                               frame_ms_ssim, frame_psnr, frames_to_rgb24, measure_frames, measure_pair, ms_ssim_method,
                               ms_ssim_to_db, mse_to_psnr, plane_frame_psnr, rgb_frame_psnr, vmaf_args, vmaf_score)
from nervcodec.metrics.vmaf import escape_filter_value

PSNR_MSE1_8BIT = 10 * math.log10(255 ** 2)  # 48.1308... dB


def smooth_clip(width: int, height: int, n: int, fmt: str = "yuv420p", seed: int = 0) -> Frames:
    """A moving gradient with mild texture: natural enough for SSIM, exact to regenerate."""
    pf = pixel_format(fmt)
    rng = np.random.default_rng(seed)
    scale = pf.max_value / 255.0
    planes = []
    for i, (h, w) in enumerate(pf.plane_shapes(width, height)):
        yy, xx = np.mgrid[0:h, 0:w]
        t = np.arange(n)[:, None, None]
        base = 128 + 60 * np.sin((xx[None] + 3 * t) / (7.0 + i)) * np.cos(yy[None] / (5.0 + i))
        base = base + rng.normal(0, 4, (n, h, w))
        planes.append(np.clip(np.round(base * scale), 16 * scale, 235 * scale).astype(pf.dtype))
    return Frames(tuple(planes), pf)


def write_clip(path, frames: Frames) -> str:
    info = VideoInfo(frames.width, frames.height, frames.pix_fmt, Fraction(25), frames.num_frames, "clip")
    write_video(str(path), info, frames)
    return str(path)


def add_offset(frames: Frames, offsets) -> Frames:
    """Frames with a constant added per plane (no clipping needed: the clip stays within 16..235)."""
    return Frames(tuple((p.astype(np.int32) + o).astype(p.dtype) for p, o in zip(frames.planes, offsets)),
                  frames.pix_fmt)


# --------------------------------------------------------------------------- PSNR


def test_mse_to_psnr_hand_values_and_cap():
    assert mse_to_psnr(1.0, 255) == pytest.approx(48.1308036, abs=1e-6)
    assert mse_to_psnr(100.0, 255) == pytest.approx(28.1308036, abs=1e-6)
    assert mse_to_psnr(1.0, 1023) == pytest.approx(20 * math.log10(1023), abs=1e-9)
    assert mse_to_psnr(0.0, 255) == PSNR_CAP_DB


def test_frame_psnr_is_per_frame_not_pooled():
    ref = np.zeros((2, 4, 4), np.uint8)
    dist = ref.copy()
    dist[0] += 1            # frame 0: MSE 1
    dist[1, :2] += 4        # frame 1: half the pixels off by 4 -> MSE 8
    got = frame_psnr(ref, dist, 255)
    np.testing.assert_allclose(got, [PSNR_MSE1_8BIT, PSNR_MSE1_8BIT - 10 * math.log10(8)], atol=1e-9)


def test_rgb_psnr_averages_over_frames_with_mse_over_channels():
    ref = np.full((2, 2, 2, 3), 100, np.uint8)
    dist = ref.copy()
    dist[0, ..., 0] = 102   # one channel off by 2 -> MSE 4/3
    # frame 1 identical -> capped
    got = rgb_frame_psnr(ref, dist)
    np.testing.assert_allclose(got, [10 * math.log10(255 ** 2 / (4 / 3)), PSNR_CAP_DB], atol=1e-9)
    with pytest.raises(ValueError):
        rgb_frame_psnr(ref.astype(np.uint16), dist.astype(np.uint16))


def test_plane_psnr_and_yuv_611_weighting():
    ref = smooth_clip(16, 8, 2)
    dist = add_offset(ref, (1, 2, 0))   # Y: MSE 1, U: MSE 4, V: exact
    p = plane_frame_psnr(ref, dist)
    y, u = PSNR_MSE1_8BIT, PSNR_MSE1_8BIT - 10 * math.log10(4)
    np.testing.assert_allclose(p.y, [y, y], atol=1e-9)
    np.testing.assert_allclose(p.u, [u, u], atol=1e-9)
    np.testing.assert_allclose(p.v, [PSNR_CAP_DB] * 2)
    np.testing.assert_allclose(p.yuv, [(6 * y + u + PSNR_CAP_DB) / 8] * 2, atol=1e-9)


def test_plane_psnr_uses_the_bit_depth_peak():
    ref = smooth_clip(8, 8, 1, fmt="yuv420p10le")
    p = plane_frame_psnr(ref, add_offset(ref, (1, 1, 1)))
    np.testing.assert_allclose(p.y, [20 * math.log10(1023)], atol=1e-9)
    with pytest.raises(ValueError):
        plane_frame_psnr(ref, smooth_clip(8, 8, 1))


# --------------------------------------------------------------------------- RGB conversion


def test_rgb_conversion_is_ffmpeg_default_bt601_limited_range():
    pf = pixel_format("yuv420p")
    ys = [16, 235, 126]
    frames = Frames((np.array([np.full((4, 4), y, np.uint8) for y in ys]),
                     np.full((3, 2, 2), 128, np.uint8), np.full((3, 2, 2), 128, np.uint8)), pf)
    rgb = frames_to_rgb24(frames)
    assert rgb.shape == (3, 4, 4, 3) and rgb.dtype == np.uint8
    # limited range: 16 -> 0, 235 -> 255, 126 -> (126-16)*255/219 = 128.08
    np.testing.assert_array_equal(rgb[0], 0)
    np.testing.assert_array_equal(rgb[1], 255)
    assert np.all(np.abs(rgb[2].astype(int) - 128) <= 1)


# --------------------------------------------------------------------------- MS-SSIM


@pytest.mark.parametrize("size, kind, win, noted", [
    ((1920, 1080), "ms-ssim", 11, False),
    ((176, 161), "ms-ssim", 11, False),
    ((176, 160), "ms-ssim", 9, True),
    ((176, 144), "ms-ssim", 9, True),
    ((64, 48), "ms-ssim", 3, True),
    ((32, 32), "ssim", 11, True),
    ((16, 8), "ssim", 7, True),
])
def test_ms_ssim_window_choice(size, kind, win, noted):
    m = ms_ssim_method(*size)
    assert (m.kind, m.win_size, m.note is not None) == (kind, win, noted)
    if m.kind == "ms-ssim":
        assert min(size) > (m.win_size - 1) * 16   # pytorch_msssim's own requirement


def test_ms_ssim_matches_pytorch_msssim_and_is_one_when_identical():
    import torch
    from pytorch_msssim import ms_ssim

    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (2, 176, 176, 3)).astype(np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    got = frame_ms_ssim(ref, dist)
    want = ms_ssim(torch.tensor(ref).permute(0, 3, 1, 2).float(), torch.tensor(dist).permute(0, 3, 1, 2).float(),
                   data_range=255, size_average=False)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)
    assert np.all(got < 1)
    np.testing.assert_allclose(frame_ms_ssim(ref, ref), 1.0, atol=1e-6)


def test_ms_ssim_small_frames_do_not_crash():
    ref = smooth_clip(64, 48, 2)
    rgb = frames_to_rgb24(ref)
    v = frame_ms_ssim(rgb, np.clip(rgb.astype(int) + 8, 0, 255).astype(np.uint8))
    assert v.shape == (2,) and np.all((0 < v) & (v < 1))


# --------------------------------------------------------------------------- rate, BD


def test_bits_per_pixel():
    assert bits_per_pixel(1000, 10, 10, 10) == 8.0
    assert bits_per_pixel(6831, 48, 176, 144) == pytest.approx(0.044921875)


def test_file_bpp(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"\0" * 300)
    assert file_bpp(str(p), 2, 10, 12) == pytest.approx(300 * 8 / 240)
    with pytest.raises(InputError):
        file_bpp(str(tmp_path / "missing"), 1, 1, 1)


ANCHOR_R = [1.0, 2.0, 4.0, 8.0]
ANCHOR_Q = [30.0, 33.0, 36.0, 39.0]   # 3 dB per doubling


def test_bd_rate_known_pair():
    """The test codec reaches every quality with 80% of the anchor's bits: BD-rate -20%.

    At equal rate it is 3*log2(1/0.8) = 0.966 dB better (the curve is linear in log rate,
    so every interpolator is exact).
    """
    test_r = [0.8 * r for r in ANCHOR_R]
    for method in ("akima", "pchip", "cubic"):
        r = bd_delta(ANCHOR_R, ANCHOR_Q, test_r, ANCHOR_Q, method=method)
        assert r.bd_rate == pytest.approx(-20.0, abs=1e-6)
        assert r.bd_quality == pytest.approx(3 * math.log2(1.25), abs=1e-6)
        assert r.overlap_quality == pytest.approx(1.0)
        # log10 rate ranges [0, .903] and [-.097, .806]: common .806 of 1.0
        assert r.overlap_rate == pytest.approx(math.log10(8 * 0.8) / math.log10(8 / 0.8))


def test_bd_is_order_independent_and_takes_unequal_point_counts():
    test_r = [0.5, 1.6, 3.2, 6.4, 12.8]
    test_q = [29.0, 32.0, 35.0, 38.0, 41.0]
    a = bd_delta(ANCHOR_R, ANCHOR_Q, test_r, test_q)
    b = bd_delta(ANCHOR_R[::-1], ANCHOR_Q[::-1], test_r[::-1], test_q[::-1])
    assert a.bd_rate == pytest.approx(b.bd_rate) and a.bd_quality == pytest.approx(b.bd_quality)
    assert (a.anchor_points, a.test_points) == (4, 5)


def test_bd_no_number_without_overlap():
    r = bd_delta(ANCHOR_R, ANCHOR_Q, [100.0, 200.0], [50.0, 55.0])
    assert r.bd_rate is None and r.bd_quality is None
    assert r.overlap_quality == 0.0 and r.overlap_rate == 0.0
    assert any("do not overlap" in n for n in r.notes)


def test_bd_low_overlap_is_flagged_and_single_points_refused():
    r = bd_delta(ANCHOR_R, ANCHOR_Q, [6.0, 12.0, 24.0], [38.0, 41.0, 44.0])
    assert r.bd_rate is not None and 0 < r.overlap_quality < 0.75
    assert any("overlap below" in n for n in r.notes)
    r = bd_delta(ANCHOR_R, ANCHOR_Q, [2.0], [33.0])
    assert r.bd_rate is None and r.notes


def test_curve_overlap_and_ms_ssim_db():
    assert curve_overlap([0, 10], [5, 15]) == pytest.approx(5 / 15)
    assert curve_overlap([0, 1], [2, 3]) == 0.0
    assert ms_ssim_to_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_to_db(0.99) == pytest.approx(20.0)


# --------------------------------------------------------------------------- whole videos, VMAF


def test_compare_videos_matches_hand_computed_psnr(tmp_path):
    ref = smooth_clip(64, 48, 6)
    dist = add_offset(ref, (2, 0, 1))   # Y MSE 4, U exact, V MSE 1
    rp, dp = write_clip(tmp_path / "ref.y4m", ref), write_clip(tmp_path / "dist.y4m", dist)
    rep = compare_videos(rp, dp)
    assert rep.frames == 6 and (rep.width, rep.height) == (64, 48)
    assert rep.psnr_y == pytest.approx(PSNR_MSE1_8BIT - 10 * math.log10(4), abs=1e-9)
    assert rep.psnr_u == PSNR_CAP_DB
    assert rep.psnr_v == pytest.approx(PSNR_MSE1_8BIT, abs=1e-9)
    assert rep.psnr_yuv == pytest.approx((6 * rep.psnr_y + rep.psnr_u + rep.psnr_v) / 8)
    # PSNR-RGB: numpy on ffmpeg's RGB of both, per-frame mean
    rr, dr = frames_to_rgb24(ref).astype(float), frames_to_rgb24(dist).astype(float)
    mse = ((rr - dr) ** 2).reshape(6, -1).mean(1)
    assert rep.psnr_rgb == pytest.approx(float(np.mean(10 * np.log10(255 ** 2 / mse))), abs=1e-9)
    assert 0.9 < rep.ms_ssim < 1.0 and rep.ms_ssim_method.win_size == 3
    same = measure_frames(ref, dist)
    assert same.psnr_rgb == pytest.approx(rep.psnr_rgb) and same.ms_ssim == pytest.approx(rep.ms_ssim)
    d = measure_pair(rp, dp)   # the dict form used by encode --verify
    assert d["frames"] == 6 and d["psnr_yuv"] == pytest.approx(rep.psnr_yuv) and d["ms_ssim"] is None


def test_compare_videos_rejects_mismatched_inputs(tmp_path):
    ref = smooth_clip(64, 48, 4)
    rp = write_clip(tmp_path / "ref.y4m", ref)
    with pytest.raises(InputError, match="frames"):
        compare_videos(rp, write_clip(tmp_path / "short.y4m", ref[0:3]))
    with pytest.raises(InputError, match="pixel format"):
        compare_videos(rp, write_clip(tmp_path / "deep.y4m", smooth_clip(64, 48, 4, fmt="yuv420p10le")))


def test_vmaf_args_put_distorted_first_and_escape_the_log_path():
    args = vmaf_args("dist.y4m", "ref.y4m", "/tmp/a:b/v.json", threads=2)
    assert args[:4] == ["-i", "dist.y4m", "-i", "ref.y4m"]
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v][1:v]libvmaf=") and graph.endswith("[s0]")
    assert args[args.index("-map") + 1] == "[s0]" and args[-3:] == ["-f", "null", "-"]
    assert "log_path=/tmp/a\\\\:b/v.json" in graph and "n_threads=2" in graph
    # ffmpeg-python escapes the option values as escape_filter_value does (two levels).
    odd = "/tmp/x:y,z'q[1];/v.json"
    assert "log_path=" + escape_filter_value(odd) + ":" in vmaf_args("d", "r", odd)[5]
    assert escape_filter_value("a,b") == "a\\,b"


def test_vmaf_score_of_identical_and_distorted_video(tmp_path):
    ref = smooth_clip(176, 144, 3)
    rp = write_clip(tmp_path / "ref.y4m", ref)
    noisy = Frames(tuple(np.clip(p.astype(int) + np.random.default_rng(2).integers(-25, 26, p.shape), 0, 255)
                         .astype(np.uint8) for p in ref.planes), ref.pix_fmt)
    dp = write_clip(tmp_path / "dist.y4m", noisy)
    same, worse = vmaf_score(rp, rp), vmaf_score(dp, rp)
    assert same.frames == 3 and same.mean > 90
    assert worse.mean < same.mean
