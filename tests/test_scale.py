"""Collections at scale: the on-disk cache, input lists, more than 255 videos, decode split over processes."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch.multiprocessing as mp
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, decode, encode
from nervcodec.container.nervfile import Header, _pack_header, _unpack_header
from nervcodec.errors import ConfigError, FormatError, InputError
from nervcodec.io import read_video, write_video
from nervcodec.io.cache import ArrayStore, DiskCache, RecordFile
from nervcodec.io.lists import read_input_list
from nervcodec.io.video import VideoInfo, pixel_format

import dist_workers
from conftest import make_clip, make_moving_clip


def test_lazy_frames_read_back_exactly_what_was_stored(tmp_path):
    info, fr = make_clip(width=20, height=14, frames=7)
    cache = DiskCache(tmp_path)
    lazy = cache.store_frames([fr[0:3], fr[3:7]], fr.pix_fmt, 20, 14, "v.raw")
    assert lazy.num_frames == 7 and lazy.planes[1].shape == fr.planes[1].shape
    for k, p in enumerate(fr.planes):
        q = lazy.planes[k]
        assert np.array_equal(q[4], p[4]) and np.array_equal(q[[6, 0, 6]], p[[6, 0, 6]])
        assert np.array_equal(q[2:5], p[2:5]) and np.array_equal(np.asarray(q), p)
        assert np.array_equal(q[3, 1:4, 2:], p[3, 1:4, 2:]) and np.array_equal(q[[1, 2], 0], p[[1, 2], 0])
    with pytest.raises(IndexError):
        lazy.planes[0][7]
    store = ArrayStore(cache, "a.raw")
    store.put("k", [np.arange(6, dtype=np.int16).reshape(2, 3), np.ones(4, np.uint8)])
    a, b = store["k"]
    assert a.dtype == np.int16 and a.tolist() == [[0, 1, 2], [3, 4, 5]] and b.tolist() == [1, 1, 1, 1]
    rec = RecordFile(cache, "r.raw", [("y", (2, 3), np.uint8), ("t", (2,), np.float32)])
    rec.append({"y": np.arange(18, dtype=np.uint8).reshape(3, 2, 3), "t": np.arange(6, dtype=np.float32).reshape(3, 2)})
    rows = rec.read([2, 0])
    assert rows["y"][0].tolist() == [[12, 13, 14], [15, 16, 17]] and rows["t"][1].tolist() == [0.0, 1.0]
    folder = cache.folder
    cache.close()
    assert not (tmp_path / folder).exists()


@pytest.mark.parametrize("opts", [dict(model="dnerv", params=7000, keyframe_quality=40, clip_len=4, mask="central",
                                       holdout="every:2"),
                                  dict(model="nerv", params=2500)], ids=["dnerv-mask-holdout", "nerv"])
def test_the_cache_changes_where_frames_live_not_the_file(tmp_path, opts):
    srcs = []
    for k in range(2):
        info, fr = make_moving_clip(width=32, height=24, frames=9, speed=1 + k, name=f"v{k}")
        srcs.append(tmp_path / f"v{k}.y4m")
        write_video(srcs[-1], info, fr)
    cfg = dict(epochs=2, device="cpu", **opts)
    mem = encode(srcs, tmp_path / "mem.nerv", EncodeConfig(**cfg))
    disk = encode(srcs, tmp_path / "disk.nerv", EncodeConfig(cache_dir=str(tmp_path / "cache"), **cfg))
    assert (tmp_path / "mem.nerv").read_bytes() == (tmp_path / "disk.nerv").read_bytes()
    assert mem.psnr == disk.psnr and len(disk.peak_rss_mib) == 1 and disk.peak_rss_mib[0] > 0
    assert list((tmp_path / "cache").iterdir()) == []                         # removed after the encode


def test_input_lists_and_folders(tmp_path):
    for k in range(3):
        write_video(tmp_path / f"c{k}.y4m", *make_clip(width=16, height=16, frames=2, name=f"c{k}"))
    (tmp_path / "notes.txt").write_text("not a video")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# the collection\nc2.y4m\n\n{tmp_path / 'c0.y4m'}\n")
    assert read_input_list(listing) == [str(tmp_path / "c2.y4m"), str(tmp_path / "c0.y4m")]
    assert read_input_list(tmp_path) == [str(tmp_path / f"c{k}.y4m") for k in range(3)]
    for bad in (tmp_path / "missing.txt", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(InputError):
            read_input_list(bad)
    res = CliRunner().invoke(cli, ["encode", "--inputs-from", str(listing), str(tmp_path / "o.nerv"), "--model",
                                   "nerv", "--params", "2500", "--epochs", "1", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["videos"] == ["c2", "c0"]
    res = CliRunner().invoke(cli, ["encode", "--inputs-from", str(listing), "a.nerv", "b.nerv"])
    assert res.exit_code != 0 and "only the OUTPUT" in res.output


def test_headers_of_more_than_255_videos_round_trip_and_fewer_keep_their_bytes():
    fmt = pixel_format("yuv420p")
    videos = tuple(VideoInfo(16, 16, fmt, Fraction(25), 2, name=f"v{k}") for k in range(300))
    h = Header(videos=videos, arch_id=1, quant_bits=8, model={"config": {}, "layout": {}})
    data = _pack_header(h)
    assert data[0] == 0 and _unpack_header(data).videos == videos
    small = Header(videos=videos[:255], arch_id=1, quant_bits=8, model={"config": {}, "layout": {}})
    assert _pack_header(small)[0] == 255
    with pytest.raises(FormatError):
        _unpack_header(b"\x00\x05" + _pack_header(small)[1:])                # a long count must be long


def test_decode_a_range_of_videos_and_split_over_two_processes(tmp_path):
    srcs = []
    for k in range(3):
        write_video(tmp_path / f"v{k}.y4m", *make_moving_clip(width=32, height=24, frames=3, name=f"v{k}"))
        srcs.append(tmp_path / f"v{k}.y4m")
    nerv = tmp_path / "c.nerv"
    encode(srcs, nerv, EncodeConfig(model="nerv", params=2500, epochs=1, device="cpu"))
    whole = decode(nerv, tmp_path / "all", device="cpu")
    part = decode(nerv, tmp_path / "part", device="cpu", video="1:3")
    assert [p.split("/")[-1] for p in part.outputs] == ["v1.y4m", "v2.y4m"] and part.frames == 6
    with pytest.raises(ConfigError):
        decode(nerv, tmp_path / "x", video="2:9")
    mp.start_processes(dist_workers.decode_worker, args=(2, str(tmp_path), str(nerv), str(tmp_path / "split")),
                       nprocs=2, start_method="spawn", join=True)
    r0 = json.loads((tmp_path / "decode0.json").read_text())
    assert r0["frames"] == whole.frames == 9
    for k in range(3):
        a, b = read_video(tmp_path / "all" / f"v{k}.y4m")[1], read_video(tmp_path / "split" / f"v{k}.y4m")[1]
        assert all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))
