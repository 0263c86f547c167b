"""Keyframe codecs: registry ids, blob packing, ffmpeg round trips, rate control, compressai models.

Frames are small synthetic images made here (smooth gradients with a little
texture), never the dev clips.  VVC is marked slow (vvenc is the slowest
encoder); the learned-codec tests use one 64x48 frame at quality 1.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from nervcodec.errors import ConfigError, FormatError, NervCodecError
from nervcodec.io.video import Frames, pixel_format
from nervcodec.keyframes.ffmpeg_codecs import split_access_units
from nervcodec.keyframes import (DEFAULT_KEYFRAME_CODEC, KEYFRAME_CODECS, NO_KEYFRAME_CODEC_ID, Av1Codec,
                                 HevcCodec, JxlCodec, VvcCodec, VvcInterCodec, choose_quality, crop_frames,
                                 default_keyframe_codec,
                                 ffmpeg_has_encoder,
                                 keyframe_codec, keyframe_codec_by_id, pack_blobs, packed_size, pad_frames,
                                 rgb_to_yuv, search_quality, unpack_blobs, yuv_to_rgb)

GOLDEN_IDS = {
    "hevc": 1, "vvc": 2, "av1": 3, "jxl": 4, "vvc-ra": 5,
    "bmshj2018-factorized": 16, "bmshj2018-hyperprior": 17, "mbt2018-mean": 18, "mbt2018": 19,
    "cheng2020-anchor": 20, "cheng2020-attn": 21,
}


def make_frames(pix_fmt: str, width: int, height: int, n: int = 2, seed: int = 0) -> Frames:
    """Smooth gradients plus mild noise, within the limited video range (so RGB round trips stay in gamut)."""
    fmt = pixel_format(pix_fmt)
    rng = np.random.default_rng(seed)
    s = 1 << (fmt.bit_depth - 8)
    planes = []
    for k, (h, w) in enumerate(fmt.plane_shapes(width, height)):
        y, x = np.mgrid[0:h, 0:w]
        frames = []
        for i in range(n):
            if k == 0:
                v = 60 + 120 * (x / max(w - 1, 1)) * (0.6 + 0.4 * np.sin(y / 3.0 + i)) + rng.normal(0, 3, (h, w))
            else:
                v = 128 + (12 if k == 1 else -10) * np.cos(x / 5.0 + y / 7.0 + i) + rng.normal(0, 1, (h, w))
            frames.append(np.clip(np.rint(v * s), 0, fmt.max_value))
        planes.append(np.stack(frames).astype(fmt.dtype))
    return Frames(tuple(planes), fmt)


def psnr_yuv(a: Frames, b: Frames) -> float:
    """(6*Y + U + V)/8 PSNR of the whole batch (Y only for gray)."""
    peak = a.pix_fmt.max_value
    weights = (6, 1, 1)[: a.pix_fmt.num_planes]
    vals = []
    for p, q in zip(a.planes, b.planes):
        mse = float(np.mean((p.astype(np.float64) - q.astype(np.float64)) ** 2))
        vals.append(100.0 if mse == 0 else 10 * math.log10(peak * peak / mse))
    return sum(w * v for w, v in zip(weights, vals)) / sum(weights)


def same(a: Frames, b: Frames) -> bool:
    return a.pix_fmt == b.pix_fmt and all(np.array_equal(p, q) for p, q in zip(a.planes, b.planes))


def noise_frames(fmt, n: int, width: int = 40, height: int = 24) -> Frames:
    """Uniform noise over the whole sample range: what no codec can predict (near-lossless stress)."""
    rng = np.random.default_rng(1)
    return Frames(tuple(rng.integers(0, fmt.max_value + 1, (n, h, w)).astype(fmt.dtype)
                        for h, w in fmt.plane_shapes(width, height)), fmt)


def needs(encoder: str):
    return pytest.mark.skipif(not ffmpeg_has_encoder(encoder), reason=f"this ffmpeg has no {encoder}")


# --------------------------------------------------------------------------- registry


def test_registry_ids_are_golden_and_unique():
    assert {name: spec.codec_id for name, spec in KEYFRAME_CODECS.items()} == GOLDEN_IDS
    assert NO_KEYFRAME_CODEC_ID not in GOLDEN_IDS.values()
    assert DEFAULT_KEYFRAME_CODEC in KEYFRAME_CODECS
    for name, cid in GOLDEN_IDS.items():
        codec = keyframe_codec_by_id(cid)
        assert codec.name == name and codec.codec_id == cid
        assert keyframe_codec(name).codec_id == cid
        lo, hi = codec.quality_range
        assert isinstance(lo, int) and isinstance(hi, int) and lo < hi


def test_default_codec_falls_back_for_formats_it_cannot_code():
    assert default_keyframe_codec("yuv420p").name == DEFAULT_KEYFRAME_CODEC or not ffmpeg_has_encoder("libvvenc")
    fallback = default_keyframe_codec("yuv444p12le")
    assert fallback.supports("yuv444p12le")


def test_registry_errors():
    with pytest.raises(ConfigError):
        keyframe_codec("mpeg1")
    with pytest.raises(FormatError):
        keyframe_codec_by_id(200)
    with pytest.raises(ConfigError):
        keyframe_codec("hevc", no_such_option=1)
    with pytest.raises(ConfigError):
        keyframe_codec("vvc", preset="ludicrous")


def test_portability_flags():
    assert keyframe_codec("hevc").portable and keyframe_codec("bmshj2018-factorized").portable
    for name in ("bmshj2018-hyperprior", "mbt2018-mean", "mbt2018", "cheng2020-anchor", "cheng2020-attn"):
        assert not keyframe_codec(name).portable


def test_quality_validation():
    codec = keyframe_codec("hevc")
    with pytest.raises(ConfigError):
        codec.encode(make_frames("yuv420p", 32, 32, 1), 99)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("blobs", [[], [b""], [b"abc"], [b"HDRxyz1", b"HDRxy2", b"HDRx"], [b"same", b"same"],
                                   [bytes(range(256)) * 3, bytes(range(256)) * 2 + b"\x00" * 300]])
def test_pack_unpack_round_trip(blobs):
    data = pack_blobs(blobs)
    assert unpack_blobs(data) == blobs
    assert packed_size(blobs) == len(data)


def test_pack_shares_prefix_and_detects_damage():
    blobs = [b"H" * 100 + bytes([i]) * 50 for i in range(4)]
    data = pack_blobs(blobs)
    assert len(data) < 100 + 4 * 52 + 4
    with pytest.raises(FormatError):
        unpack_blobs(data[:-1])
    with pytest.raises(FormatError):
        unpack_blobs(data + b"\x00")
    with pytest.raises(FormatError):
        unpack_blobs(b"\x80")


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "gray"])
def test_pad_crop_inverse(pix_fmt):
    f = make_frames(pix_fmt, 33, 17)
    p = pad_frames(f, 40, 32)
    assert (p.width, p.height) == (40, 32)
    assert same(crop_frames(p, 33, 17), f)


# --------------------------------------------------------------------------- ffmpeg codecs

FAST = [
    pytest.param(HevcCodec, id="hevc", marks=needs("libx265")),
    pytest.param(Av1Codec, id="av1", marks=needs("libaom-av1")),
    pytest.param(JxlCodec, id="jxl", marks=needs("libjxl")),
    pytest.param(VvcCodec, id="vvc", marks=[needs("libvvenc"), pytest.mark.slow]),
]


@pytest.mark.parametrize("cls", FAST)
@pytest.mark.parametrize("pix_fmt,width,height", [("yuv420p", 64, 48), ("yuv420p", 33, 17),
                                                  ("yuv420p10le", 15, 9)])
def test_ffmpeg_round_trip(cls, pix_fmt, width, height):
    codec = cls()
    frames = make_frames(pix_fmt, width, height)
    lo, hi = codec.quality_range
    q = hi - (hi - lo) // 5  # high quality
    blobs = codec.encode(frames, q)
    assert len(blobs) == 2 and all(isinstance(b, bytes) and b for b in blobs)
    blobs = unpack_blobs(pack_blobs(blobs))
    out = codec.decode(blobs, pix_fmt, width, height)
    assert out.pix_fmt == frames.pix_fmt
    assert [p.shape for p in out.planes] == [p.shape for p in frames.planes]
    assert all(p.dtype == frames.pix_fmt.dtype for p in out.planes)
    assert psnr_yuv(frames, out) > 38.0
    assert same(out, codec.decode(blobs, pix_fmt, width, height))  # deterministic
    one = codec.decode(blobs[1:], pix_fmt, width, height)  # random access: a frame on its own
    assert same(one, out[1:2])


@pytest.mark.parametrize("cls,pix_fmt", [
    pytest.param(HevcCodec, "yuv444p", marks=needs("libx265")),
    pytest.param(HevcCodec, "gray10le", marks=needs("libx265")),
    pytest.param(Av1Codec, "yuv422p", marks=needs("libaom-av1")),
    pytest.param(Av1Codec, "gray", marks=needs("libaom-av1")),
    pytest.param(JxlCodec, "gray10le", marks=needs("libjxl")),
    pytest.param(VvcCodec, "gray", marks=[needs("libvvenc"), pytest.mark.slow]),
])
def test_ffmpeg_other_formats(cls, pix_fmt):
    codec = cls()
    assert codec.supports(pix_fmt)
    frames = make_frames(pix_fmt, 35, 21, n=1)
    out = codec.decode(codec.encode(frames, codec.quality_range[1] - 8), pix_fmt, 35, 21)
    assert [p.shape for p in out.planes] == [p.shape for p in frames.planes] and out.pix_fmt == frames.pix_fmt
    assert psnr_yuv(frames, out) > 38.0


@pytest.mark.slow
@needs("libvvenc")
def test_vvc_near_lossless_noise_is_retried_taller():
    """ffmpeg's libvvenc wrapper caps an access unit at width*height bytes; noise at QP 0 needs more."""
    fmt = pixel_format("yuv420p10le")
    frames = Frames.concat([make_frames("yuv420p10le", 40, 24, 1), noise_frames(fmt, 1)])
    codec = VvcCodec()
    blobs = codec.encode(frames, 63)
    assert blobs[0][0] == 0 and 1 <= blobs[1][0] <= 3  # plain Annex-B, then a marked taller picture
    out = codec.decode(unpack_blobs(pack_blobs(blobs)), fmt, 40, 24)
    assert [p.shape for p in out.planes] == [p.shape for p in frames.planes]
    assert psnr_yuv(frames, out) > 50.0
    assert same(out[1:2], codec.decode(blobs[1:], fmt, 40, 24))


def moving_frames(n: int, width: int = 64, height: int = 48) -> Frames:
    """A textured picture panning one sample right per frame (what inter prediction is for)."""
    rng = np.random.default_rng(5)
    fmt = pixel_format("yuv420p")
    big = {k: rng.integers(40, 200, (h, w + n)).astype(np.float64) for k, (h, w) in
           enumerate(fmt.plane_shapes(width, height))}
    for k in big:   # smooth the texture a little: natural pictures are not white noise
        big[k] = (big[k] + np.roll(big[k], 1, 0) + np.roll(big[k], 1, 1) + np.roll(big[k], 1, (0, 1))) / 4
    planes = []
    for k, (h, w) in enumerate(fmt.plane_shapes(width, height)):
        step = 1 if k == 0 else 0
        planes.append(np.stack([big[k][:, i * step:i * step + w] for i in range(n)]).round().astype(np.uint8))
    return Frames(tuple(planes), fmt)


def test_split_access_units_cuts_before_each_delimiter():
    aud = bytes([0x00, 20 << 3 | 1, 0x10])         # an AUD NAL: header (type 20) and payload
    vcl = bytes([0x00, 2 << 3 | 1, 0x80, 0x00, 0x00, 0x03, 0x01])   # a slice with an emulation-prevented 00 00 01
    sps = bytes([0x00, 15 << 3 | 1, 0x42])
    au0 = b"\x00\x00\x00\x01" + aud + b"\x00\x00\x01" + sps + b"\x00\x00\x01" + vcl
    au1 = b"\x00\x00\x01" + aud + b"\x00\x00\x01" + vcl
    au2 = b"\x00\x00\x00\x01" + aud + b"\x00\x00\x00\x01" + vcl
    assert split_access_units(au0 + au1 + au2) == [au0, au1, au2]
    with pytest.raises(FormatError):
        split_access_units(b"\x00\x00\x01" + sps + au1)   # the stream must start with a delimiter


@pytest.mark.slow
@needs("libvvenc")
def test_vvc_ra_round_trip_is_exact_whole_and_far_smaller_than_intra():
    frames = moving_frames(6)
    ra, intra = VvcInterCodec(), VvcCodec()
    assert not ra.independent and intra.independent
    blobs = ra.encode(frames, 40)
    assert len(blobs) == 6 and all(b[:4] == b"\x00\x00\x00\x01" and b[5] >> 3 == 20 for b in blobs)
    assert blobs == ra.encode(frames, 40)                     # deterministic bytes
    out = ra.decode(unpack_blobs(pack_blobs(blobs)), "yuv420p", 64, 48)
    assert [p.shape for p in out.planes] == [p.shape for p in frames.planes]
    assert psnr_yuv(frames, out) > 36.0
    assert same(out, ra.decode(blobs, "yuv420p", 64, 48))   # the same pictures on every decode
    alone = intra.encode(frames, 40)
    assert packed_size(blobs) < 0.6 * packed_size(alone), (packed_size(blobs), packed_size(alone))
    with pytest.raises(NervCodecError):      # one access unit of a predicted stream does not decode alone
        ra.decode(blobs[2:3], "yuv420p", 64, 48)
    assert ra.quality_range == (0, 63)
    q, chosen = choose_quality(ra, frames, packed_size(blobs))   # its rate control: the quality coded above
    assert q >= 40 and packed_size(chosen) <= packed_size(blobs)


@pytest.mark.slow
@needs("libvvenc")
def test_vvc_ra_near_lossless_noise_is_retried_taller():
    fmt = pixel_format("yuv420p")
    noise = noise_frames(fmt, 3)
    codec = VvcInterCodec()
    blobs = codec.encode(noise, 63)
    assert len(blobs) == 3 and len({b[0] for b in blobs}) == 1 and 1 <= blobs[0][0] <= 3
    out = codec.decode(unpack_blobs(pack_blobs(blobs)), fmt, 40, 24)
    assert [p.shape for p in out.planes] == [p.shape for p in noise.planes]
    assert psnr_yuv(noise, out) > 45.0


def test_supports():
    assert not VvcCodec().supports("yuv444p") and not VvcCodec().supports("yuv422p10le")
    assert VvcCodec().supports("yuv420p") and VvcCodec().supports("yuv420p10le")
    assert all(HevcCodec().supports(f) for f in ("yuv420p", "yuv422p", "yuv444p10le", "gray", "yuv420p12le"))
    assert not HevcCodec().supports("rgb24")
    with pytest.raises(ConfigError):
        VvcCodec().encode(make_frames("yuv444p", 32, 32, 1), 30)


@pytest.mark.parametrize("cls,qualities", [
    pytest.param(HevcCodec, [5, 15, 25, 35, 45], marks=needs("libx265")),
    pytest.param(Av1Codec, [5, 20, 35, 50, 60], marks=needs("libaom-av1")),
    pytest.param(JxlCodec, [8, 20, 32, 44, 56], marks=needs("libjxl")),
])
def test_bytes_grow_with_quality(cls, qualities):
    codec = cls()
    frames = make_frames("yuv420p", 48, 32, n=1)
    sizes = [packed_size(codec.encode(frames, q)) for q in qualities]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes


@needs("libx265")
def test_choose_quality_respects_budget():
    codec = HevcCodec(preset="fast")
    frames = make_frames("yuv420p", 48, 32)
    sizes = {q: packed_size(codec.encode(frames, q)) for q in (10, 30)}
    target = (sizes[10] + sizes[30]) // 2
    q, blobs = choose_quality(codec, frames, target)
    assert packed_size(blobs) <= target
    assert 10 <= q < 30
    assert packed_size(codec.encode(frames, q + 1)) > target  # q is the largest that fits
    # nothing fits: the lowest quality's result comes back
    q0, blobs0 = choose_quality(codec, frames, 10)
    assert q0 == codec.quality_range[0] and blobs0 == codec.encode(frames, q0)
    # everything fits: the highest quality
    qh, _ = choose_quality(codec, frames, 10**9, quality_range=(40, 51))
    assert qh == 51


def _size_curves(noise: float):
    """Size curves over qualities 0..63 like a codec's, never smaller at a higher quality: log-linear at
    several slopes and offsets, with ``noise`` (standard deviation of log size) and, in every fifth, a
    flat stretch; each with targets from below the lowest size to above the highest."""
    rng = np.random.default_rng(7)
    for k in range(120):
        q = np.arange(64)
        log_size = rng.uniform(3, 7) + rng.uniform(0.04, 0.25) * q + rng.normal(0, noise, 64)
        if k % 5 == 0:
            log_size[20:30] = log_size[20]
        sizes = np.maximum.accumulate(np.exp(log_size).astype(np.int64))
        for target in (int(sizes[0]) - 1, int(sizes[-1]) + 1, *rng.integers(int(sizes[0]), int(sizes[-1]), 6)):
            yield sizes, int(target)


@pytest.mark.parametrize("noise, mean_at_most, worst_at_most", [(0.05, 5.0, 9), (0.4, 7.5, 14)])
def test_search_quality_finds_what_brute_force_finds(noise, mean_at_most, worst_at_most):
    """The answer is always the brute force's; smooth curves (real codecs': log size nearly linear in
    QP) take fewer encodes than a binary search over 64 qualities (6-7), noisy ones a few more."""
    counts = []
    for sizes, target in _size_curves(noise):
        calls = []

        def encode(q):
            calls.append(q)
            return int(sizes[q])

        q, got = search_quality(encode, lambda s: s, 0, 63, target)
        fitting = [k for k in range(64) if sizes[k] <= target]
        assert q == (max(fitting) if fitting else 0) and got == sizes[q]
        assert len(calls) == len(set(calls))        # nothing is encoded twice
        counts.append(len(calls))
    inner = counts[2::8] + counts[3::8] + counts[4::8] + counts[5::8] + counts[6::8] + counts[7::8]
    assert np.mean(inner) <= mean_at_most and max(counts) <= worst_at_most, (np.mean(inner), max(counts))


def test_search_quality_on_a_range_and_an_empty_one():
    sizes = {q: 10 * q for q in range(40, 52)}
    assert search_quality(lambda q: sizes[q], lambda s: s, 40, 51, 10**9) == (51, 510)
    assert search_quality(lambda q: sizes[q], lambda s: s, 40, 51, 455) == (45, 450)
    with pytest.raises(ConfigError):
        search_quality(lambda q: 0, lambda s: s, 5, 4, 100)


def test_ffmpeg_decode_rejects_garbage():
    with pytest.raises(NervCodecError):
        HevcCodec().decode([b"\x00\x00\x01garbage"], "yuv420p", 32, 32)


# --------------------------------------------------------------------------- colour conversion


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p10le", "yuv444p", "gray"])
def test_rgb_conversion_round_trip(pix_fmt):
    f = make_frames(pix_fmt, 33, 17)
    rgb = yuv_to_rgb(f)
    assert rgb.shape == (2, 3, 17, 33) and rgb.dtype == np.float32
    back = rgb_to_yuv(rgb, pix_fmt)
    assert back.pix_fmt == f.pix_fmt and [p.shape for p in back.planes] == [p.shape for p in f.planes]
    tol = 1 << (f.pix_fmt.bit_depth - 8)  # float32 RGB: at most about one 8-bit step
    for a, b in zip(f.planes, back.planes):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= tol


# --------------------------------------------------------------------------- compressai

def _encoder_side_reference(codec, frames: Frames, quality: int):
    """What compress/decompress give on the encoder's side, run directly on the model."""
    import torch
    net = codec.model(quality)
    rgb = torch.from_numpy(yuv_to_rgb(frames))
    w, h = frames.width, frames.height
    x = torch.nn.functional.pad(rgb, (0, 64 - w % 64 if w % 64 else 0, 0, 64 - h % 64 if h % 64 else 0),
                                mode="replicate")
    with torch.inference_mode():
        enc = net.compress(x)
        x_hat = net.decompress(enc["strings"], enc["shape"])["x_hat"]
    return enc, rgb_to_yuv(x_hat[:, :, :h, :w].numpy(), frames.pix_fmt)


@pytest.mark.parametrize("name", ["bmshj2018-factorized", "cheng2020-anchor"])
def test_compressai_random_round_trip(name):
    codec = keyframe_codec(name, allow_random=True, seed=3)
    frames = make_frames("yuv420p", 64, 48, n=1)
    blobs = codec.encode(frames, 1)
    params = codec.params(1)
    assert params == {"model": name, "q": 1, "metric": "mse", "weights": "random:3", "tables": params["tables"]}
    enc, expected = _encoder_side_reference(codec, frames, 1)
    assert blobs[0].endswith(enc["strings"][-1][0])  # the blob is compressai's strings
    # a fresh codec object (as on the decoder) reproduces the encoder-side reconstruction exactly
    decoder = keyframe_codec_by_id(codec.codec_id, allow_random=True, seed=3)
    out = decoder.decode(blobs, "yuv420p", 64, 48, params)
    assert same(out, expected)
    assert same(out, decoder.decode(blobs, "yuv420p", 64, 48, params))


def test_compressai_refuses_other_weights(tmp_path):
    import torch
    name = "bmshj2018-factorized"
    files = []
    for seed in (1, 2):
        net = keyframe_codec(name, allow_random=True, seed=seed).model(1)
        path = tmp_path / f"w{seed}.pth"
        torch.save(net.state_dict(), path)
        files.append(path)
    enc = keyframe_codec(name, weights_path=files[0], weights_quality=1)
    assert enc.quality_range == (1, 1)
    frames = make_frames("yuv420p", 40, 24, n=1)
    blobs = enc.encode(frames, 1)
    params = enc.params(1)
    assert params["weights"].startswith("sha256:")
    ok = keyframe_codec(name, weights_path=files[0], weights_quality=1).decode(blobs, "yuv420p", 40, 24, params)
    assert ok.planes[0].shape == (1, 24, 40)
    with pytest.raises(ConfigError, match="not the ones"):
        keyframe_codec(name, weights_path=files[1], weights_quality=1).decode(blobs, "yuv420p", 40, 24, params)
    with pytest.raises(ConfigError, match="not the ones"):
        keyframe_codec(name, allow_random=True, seed=1).decode(blobs, "yuv420p", 40, 24, params)
    with pytest.raises(ConfigError):
        keyframe_codec(name, weights_path=files[0], weights_quality=1).decode(blobs, "yuv420p", 40, 24, None)


def test_compressai_needs_weights_and_fails_offline_quickly(tmp_path):
    with pytest.raises(ConfigError, match="needs weights"):
        keyframe_codec("cheng2020-attn").encode(make_frames("yuv420p", 16, 16, 1), 3)
    from nervcodec.keyframes.learned import download_checkpoint
    with pytest.raises(ConfigError, match="cannot download"):
        download_checkpoint("http://127.0.0.1:9/cheng2020_attn-mse-3-2d07bbdf.pth.tar", tmp_path, timeout=5)
    odd = tmp_path / "my-weights.pth"
    odd.write_bytes(b"")
    with pytest.raises(ConfigError, match="quality"):
        keyframe_codec("cheng2020-attn", weights_path=odd)  # not a zoo file name, no weights_quality
