"""D-NeRV through the codec: keyframes, collections, patches, random access."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, decode, encode, inspect
from nervcodec.codec import layout as layout_mod
from nervcodec.codec.layout import Layout, plan_layout
from nervcodec.codec.tiles import cut_items, place_tile
from nervcodec.io import read_video
from nervcodec.keyframes import ffmpeg_has_encoder


def _enc(inputs, out, **kw):
    cfg = dict(model="dnerv", params=6000, epochs=2, device="cpu", keyframe_codec="hevc", clip_len=4)
    cfg.update(kw)
    return encode(inputs, out, EncodeConfig(**cfg))


KEYFRAME_CODECS = ["hevc", pytest.param("vvc-ra", marks=pytest.mark.skipif(not ffmpeg_has_encoder("libvvenc"),
                                                                            reason="no libvvenc"))]


@pytest.mark.parametrize("codec", KEYFRAME_CODECS)
def test_random_access_equals_full_decode(tmp_path, clip_file, codec):
    """Also with keyframes predicted from each other (vvc-ra): a range decodes its video's keyframe
    stream whole and shows the same pictures as the full decode."""
    src, info, frames = clip_file(width=36, height=20, frames=11)
    out = tmp_path / "a.nerv"
    res = _enc([src], out, keyframe_codec=codec, verify=True)
    assert res.keyframe_bytes > 0 and res.bytes == out.stat().st_size
    assert res.keyframe_codec == codec and res.verify.psnr_yuv == pytest.approx(res.psnr, abs=1e-4)
    decode(out, tmp_path / "full.y4m")
    _, full = read_video(tmp_path / "full.y4m")
    for spec, (a, b) in {"5:9": (5, 9), "10": (10, 11), "0:3": (0, 3)}.items():
        part = tmp_path / f"p{a}.y4m"
        decode(out, part, frames=spec)
        _, got = read_video(part)
        for pf, pg in zip(full.planes, got.planes):
            assert np.array_equal(pf[a:b], pg)


def test_info_reports_keyframes_separately(tmp_path, clip_file):
    src, _, _ = clip_file(width=24, height=16, frames=6)
    out = tmp_path / "k.nerv"
    _enc([src], out)
    res = CliRunner().invoke(cli, ["info", str(out), "--json"])
    assert res.exit_code == 0, res.output
    fi = json.loads(res.output)
    assert fi["model"] == "dnerv" and fi["keyframe_codec"] == "hevc"
    assert fi["keyframe_bytes"] > 0 and fi["weights_bytes"] > 0
    assert fi["keyframe_bytes"] + fi["weights_bytes"] + fi["header_bytes"] == fi["bytes"]


@pytest.mark.parametrize("codec", KEYFRAME_CODECS)
def test_collection_of_two_sizes_roundtrip(tmp_path, clip_file, codec):
    a, ia, fa = clip_file(name="first", width=32, height=24, frames=6)
    b, ib, fb = clip_file(name="second", width=20, height=14, frames=9, seed=3)
    out = tmp_path / "set.nerv"
    res = _enc([a, b], out, keyframe_codec=codec)   # vvc-ra: one keyframe stream per video
    assert res.frames == 15
    assert res.bpp == pytest.approx(out.stat().st_size * 8 / (32 * 24 * 6 + 20 * 14 * 9))
    folder = tmp_path / "dec"
    d = decode(out, folder)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["first.y4m", "second.y4m"] and d.frames == 15
    for name, info in (("first", ia), ("second", ib)):
        got_info, got = read_video(folder / f"{name}.y4m")
        assert (got_info.width, got_info.height, got_info.num_frames) == (info.width, info.height, info.num_frames)
    one = tmp_path / "only_second.y4m"
    decode(out, one, video="second")
    assert one.read_bytes() == (folder / "second.y4m").read_bytes()
    decode(out, tmp_path / "by_index.y4m", video="1", frames="2:5")
    _, part = read_video(tmp_path / "by_index.y4m")
    _, whole = read_video(folder / "second.y4m")
    assert np.array_equal(part.planes[0], whole.planes[0][2:5])


def test_patches_stitch_exactly(clip_file):
    _, info, frames = clip_file(width=33, height=21, frames=3)
    lay = Layout(clip_len=1, patch_h=10, patch_w=12, time="video")
    items = lay.items([info])
    assert len({it.patch for it in items}) == 3 * 3
    y, c = cut_items([frames], lay, [info], items, 12, 16)
    fmt = info.pix_fmt
    dest = [np.zeros_like(p[0]) for p in frames.planes]
    for i, it in enumerate(items):
        if it.frames[0] != 1:
            continue
        y0, x0 = lay.patch_origin(info, it.patch)
        place_tile(dest, [y[i, 0], c[i, 0, 0], c[i, 0, 1]], y0, x0, fmt)
    for d, p in zip(dest, frames.planes):
        assert np.array_equal(d, p[1])


def test_large_frames_use_patches_and_random_access(tmp_path, clip_file, monkeypatch):
    monkeypatch.setattr(layout_mod, "MAX_PATCH_AREA", 20 * 16)
    src, info, _ = clip_file(width=40, height=30, frames=5)
    lay = plan_layout([info], 4, "video", allow_patches=True)
    assert lay.patch_grid(info)[0] * lay.patch_grid(info)[1] > 1
    out = tmp_path / "p.nerv"
    _enc([src], out)
    assert inspect(out).layout["patch"] == [lay.patch_h, lay.patch_w]
    decode(out, tmp_path / "full.y4m")
    decode(out, tmp_path / "part.y4m", frames="4:5")
    _, full = read_video(tmp_path / "full.y4m")
    _, part = read_video(tmp_path / "part.y4m")
    for pf, pp in zip(full.planes, part.planes):
        assert np.array_equal(pf[4:5], pp)


def test_dnerv_same_seed_same_file(tmp_path, clip_file):
    src, _, _ = clip_file(width=24, height=16, frames=5)
    a, b = tmp_path / "a.nerv", tmp_path / "b.nerv"
    _enc([src], a)
    _enc([src], b)
    assert a.read_bytes() == b.read_bytes()


def test_bpp_budget_includes_keyframes(tmp_path, clip_file):
    src, info, _ = clip_file(width=48, height=32, frames=9)
    out = tmp_path / "r.nerv"
    res = encode([src], out, EncodeConfig(model="dnerv", bpp=6.0, epochs=1, device="cpu", clip_len=4))
    from nervcodec.codec.keyframes import KEYFRAME_SHARE
    fi = inspect(out)
    assert fi.keyframe_bytes <= KEYFRAME_SHARE * 6.0 * info.pixels / 8 + 1
    assert res.bpp == pytest.approx(fi.bytes * 8 / info.pixels)
    assert res.bpp == pytest.approx(6.0, rel=0.1)          # the weights fill the rest


def test_keyframe_positions_show_the_decoded_keyframe(tmp_path, clip_file):
    from nervcodec.codec.keyframes import KeyframeReader
    from nervcodec.codec.layout import Layout
    from nervcodec.container import SECTION_KEYFRAMES, read_file
    src, info, _ = clip_file(width=24, height=16, frames=7)
    out = tmp_path / "s.nerv"
    _enc([src], out)
    nf = read_file(out)
    lay = Layout.from_dict(nf.header.model["layout"])
    assert lay.substitute
    reader = KeyframeReader(nf.sections[SECTION_KEYFRAMES], nf.header.videos, lay)
    decode(out, tmp_path / "d.y4m")
    _, dec = read_video(tmp_path / "d.y4m")
    for f in lay.keyframe_indices(nf.header.videos[0], 0):  # 0, 4 and 6
        for p, kp in zip(dec.planes, reader.planes(0, f)):
            assert np.array_equal(p[f], kp)


@pytest.mark.skipif(not ffmpeg_has_encoder("libvvenc"), reason="no libvvenc")
def test_prefetched_keyframe_stream_equals_the_stream_decoded_on_demand_and_carries_its_error(tmp_path, clip_file):
    from nervcodec.codec.keyframes import KeyframeReader
    from nervcodec.codec.layout import Layout
    from nervcodec.container import SECTION_KEYFRAMES, read_file
    from nervcodec.errors import ToolError
    src, info, _ = clip_file(width=24, height=16, frames=9)
    out = tmp_path / "s.nerv"
    _enc([src], out, keyframe_codec="vvc-ra")
    nf = read_file(out)
    lay = Layout.from_dict(nf.header.model["layout"])
    section, videos = nf.sections[SECTION_KEYFRAMES], nf.header.videos
    lazy, early = KeyframeReader(section, videos, lay), KeyframeReader(section, videos, lay)
    assert not early.codec.independent                  # vvc-ra: one stream per video
    early.prefetch([0])
    assert 0 in early._pending and not early.streams
    keys = lay.keyframe_indices(videos[0], 0)
    for f in keys:
        for a, b in zip(lazy.planes(0, f), early.planes(0, f)):
            assert np.array_equal(a, b)
    assert not early._pending and 0 in early.streams     # the background decode was used, once

    def broken(*args, **kwargs):
        raise ToolError("ffmpeg failed: the stream is damaged")
    bad = KeyframeReader(section, videos, lay)
    bad.codec.decode = broken
    bad.prefetch([0])
    with pytest.raises(ToolError, match="damaged"):     # raised where the keyframes are needed, not lost
        bad.planes(0, keys[0])

    intra = tmp_path / "i.nerv"                          # independent keyframes stay on demand
    _enc([src], intra)
    nf = read_file(intra)
    reader = KeyframeReader(nf.sections[SECTION_KEYFRAMES], nf.header.videos, lay)
    reader.prefetch([0])
    assert reader.codec.independent and not reader._pending


def test_keyframe_share_moves_bytes_between_keyframes_and_weights(tmp_path, clip_file):
    src, info, _ = clip_file(width=64, height=48, frames=9)
    budget = int(6.0 * 64 * 48 * 9 / 8)
    runs = {}
    for share in (0.3, 0.7):
        out = tmp_path / f"s{share}.nerv"
        res = _enc([src], out, params=None, bpp=6.0, epochs=1, keyframe_share=share)
        fi = inspect(out)
        assert 0 < fi.keyframe_bytes <= share * budget
        runs[share] = (fi.keyframe_bytes, res.params, fi.keyframe_quality)
    assert runs[0.7][0] > runs[0.3][0] and runs[0.7][2] > runs[0.3][2]  # better keyframes ...
    assert runs[0.7][1] < runs[0.3][1]                                  # ... and a smaller network


def test_fixed_keyframe_quality_is_written(tmp_path, clip_file):
    src, _, _ = clip_file(width=32, height=24, frames=5)
    out = tmp_path / "q.nerv"
    _enc([src], out, params=None, bpp=12.0, epochs=1, keyframe_quality=30)
    assert inspect(out).keyframe_quality == 30


@pytest.mark.parametrize("kw, message", [
    (dict(bpp=0.5, keyframe_share=0.0), "between 0 and 1"),
    (dict(bpp=0.5, keyframe_share=1.0), "between 0 and 1"),
    (dict(params=5000, keyframe_share=0.5), "with --bpp or --rate-preset"),
    (dict(bpp=0.5, keyframe_share=0.5, keyframe_quality=30), "only one of --keyframe-share"),
])
def test_keyframe_share_is_validated(kw, message):
    from nervcodec.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        EncodeConfig(**kw)
