"""Tests of video I/O: the y4m parser/writer, the ffmpeg reader and the atomic writers.

Clips are tiny and random (made here with numpy), so the whole file runs in a few seconds.
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

from nervcodec.errors import InputError, OutputError
from nervcodec.io import (PIXEL_FORMATS, Frames, VideoInfo, choose_pix_fmt, open_video, open_writer, pixel_format,
                          read_video, write_video)
from nervcodec.io import y4m
from nervcodec.io.reader import parse_probe
from nervcodec.tools.ffmpeg import run_ffmpeg

NTSC = Fraction(30000, 1001)


def make_clip(fmt: str, width: int, height: int, n: int, seed: int = 0) -> Frames:
    pf = pixel_format(fmt)
    rng = np.random.default_rng(seed)
    return Frames(tuple(rng.integers(0, pf.max_value + 1, (n, h, w)).astype(pf.dtype)
                        for h, w in pf.plane_shapes(width, height)), pf)


def info_for(frames: Frames, fps: Fraction = NTSC, **extra: str) -> VideoInfo:
    return VideoInfo(frames.width, frames.height, frames.pix_fmt, fps, frames.num_frames, "clip", dict(extra))


def assert_same(a: Frames, b: Frames) -> None:
    assert a.pix_fmt == b.pix_fmt
    assert len(a.planes) == len(b.planes)
    for pa, pb in zip(a.planes, b.planes):
        assert pa.dtype == pb.dtype and pa.shape == pb.shape
        np.testing.assert_array_equal(pa, pb)


# --------------------------------------------------------------------------- y4m


@pytest.mark.parametrize("fmt", sorted(PIXEL_FORMATS))
@pytest.mark.parametrize("size", [(15, 9), (1, 1), (33, 17)])
def test_y4m_round_trip_bit_exact(tmp_path, fmt, size):
    clip = make_clip(fmt, *size, n=3)
    path = tmp_path / "a.y4m"
    assert write_video(path, info_for(clip), clip) == 3
    info, back = read_video(path)
    assert (info.width, info.height, info.num_frames) == (*size, 3)
    assert info.pix_fmt.name == fmt and info.fps == NTSC and info.name == "a"
    assert_same(clip, back)
    assert os.listdir(tmp_path) == ["a.y4m"]  # no temporary left behind


def test_y4m_header_passthrough_and_c_tag(tmp_path):
    clip = make_clip("yuv420p", 8, 6, 1)
    src = tmp_path / "src.y4m"
    src.write_bytes(b"YUV4MPEG2 W8 H6 F24000:1001 It A10:11 C420mpeg2 XYSCSS=420MPEG2 XFOO=bar\nFRAME\n"
                    + clip.to_bytes(0))
    info, back = read_video(src)
    assert info.fps == Fraction(24000, 1001) and info.extra["I"] == "t" and info.extra["A"] == "10:11"
    assert_same(clip, back)
    dst = tmp_path / "dst.y4m"
    write_video(dst, info, back)
    header = dst.read_bytes().split(b"\n", 1)[0]
    assert header == b"YUV4MPEG2 W8 H6 F24000:1001 It A10:11 C420mpeg2 XFOO=bar"
    # A 10-bit writer gets its own C tag, and a default header (no C) reads as 4:2:0 jpeg.
    ten = make_clip("yuv444p10le", 4, 2, 1)
    write_video(tmp_path / "t.y4m", info_for(ten), ten)
    assert b" C444p10" in (tmp_path / "t.y4m").read_bytes().split(b"\n", 1)[0]
    assert y4m.parse_header(b"YUV4MPEG2 W4 H2 F25:1").pix_fmt.name == "yuv420p"


def test_y4m_frame_count_from_size_and_variable_frame_headers(tmp_path):
    clip = make_clip("yuv422p", 7, 5, 4)
    header = b"YUV4MPEG2 W7 H5 F25:1 C422\n"
    fixed = tmp_path / "fixed.y4m"
    fixed.write_bytes(header + b"".join(b"FRAME\n" + clip.to_bytes(i) for i in range(4)))
    with open_video(fixed) as r:
        assert r.info.num_frames == 4
    varied = tmp_path / "varied.y4m"  # per-frame parameters of different lengths force the header scan
    varied.write_bytes(header + b"".join(b"FRAME" + b" Ixyz" * i + b"\n" + clip.to_bytes(i) for i in range(4)))
    with open_video(varied) as r:
        assert r.info.num_frames == 4
        assert_same(clip, r.read())
        assert_same(clip[2:4], r.read(2, 4))


@pytest.mark.parametrize("cut", [1, 30, 215 + 3, 215 + 5])
def test_y4m_truncated_file_is_an_input_error(tmp_path, cut):
    clip = make_clip("yuv420p", 15, 9, 2)  # 215 bytes per frame
    path = tmp_path / "t.y4m"
    write_video(path, info_for(clip), clip)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    with pytest.raises(InputError, match="truncated"):
        open_video(path)


@pytest.mark.parametrize("header, message", [
    (b"YUV4MPEG3 W8 H8 F25:1\n", "not a y4m"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \n", "not a y4m"),
    (b"YUV4MPEG2 H8 F25:1\n", "W \\(width\\)"),
    (b"YUV4MPEG2 W8 F25:1\n", "H \\(height\\)"),
    (b"YUV4MPEG2 W0 H8 F25:1\n", "positive"),
    (b"YUV4MPEG2 W-8 H8 F25:1\n", "invalid width"),
    (b"YUV4MPEG2 W20000 H8 F25:1\n", "too large"),
    (b"YUV4MPEG2 W16384 H16385 F25:1\n", "too large"),
    (b"YUV4MPEG2 W8 H8\n", "F \\(frame rate\\)"),
    (b"YUV4MPEG2 W8 H8 F0:0\n", "frame rate"),
    (b"YUV4MPEG2 W8 H8 F25\n", "frame rate"),
    (b"YUV4MPEG2 W8 H8 F25:1 C411\n", "colour space"),
    (b"YUV4MPEG2 W8 H8 F25:1 C420jpeg", "cut off"),
    (b"YUV4MPEG2 W8 H8 F25:1 C420jpeg\n", "no frames"),
    (b"YUV4MPEG2 W8 H8 F25:1 C420jpeg\nFRAMEX\n" + bytes(96), "FRAME header"),
])
def test_y4m_bad_header_is_an_input_error(tmp_path, header, message):
    path = tmp_path / "bad.y4m"
    path.write_bytes(header)
    with pytest.raises(InputError, match=message):
        open_video(path)


# --------------------------------------------------------------------------- readers in general


def test_missing_empty_folder_and_non_video_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_video(tmp_path / "empty.mp4")
    with pytest.raises(InputError, match="folder"):
        open_video(tmp_path)
    (tmp_path / "notes.txt").write_text("hello, this is not a video\n" * 20)
    with pytest.raises(InputError, match="text file"):  # ffmpeg alone would render it as an "ansi" video
        open_video(tmp_path / "notes.txt")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    with pytest.raises(InputError, match="not a video") as exc:
        open_video(tmp_path / "noise.mp4")
    assert "\n" not in str(exc.value)


def test_iter_frames_ranges_match_read_slices(tmp_path):
    clip = make_clip("yuv420p10le", 9, 7, 11)
    for name in ("v.y4m", "v.mkv"):
        path = tmp_path / name
        write_video(path, info_for(clip), clip)
        with open_video(path) as r:
            full = r.read()
            assert_same(clip, full)
            for start, stop, batch in [(0, None, 4), (3, 8, 2), (8, 3, 2), (10, 11, 5), (-4, None, 3), (5, 99, 16),
                                       (0, 2, 1)]:
                got = list(r.iter_frames(batch=batch, start=start, stop=stop))
                assert all(len(b) <= batch for b in got)
                want = full[slice(start, stop)]
                if len(want) == 0:
                    assert got == []
                else:
                    assert_same(want, Frames.concat(got))
            # Interleaved iterators each keep their place, and abandoning one leaves the reader usable.
            a, b = r.iter_frames(batch=2, start=1), r.iter_frames(batch=3, start=0, stop=6)
            assert_same(full[1:3], next(a))
            assert_same(full[0:3], next(b))
            assert_same(full[3:5], next(a))
            assert_same(full[3:6], next(b))
            a.close()
            assert_same(full[6:9], r.read(6, 9))


# --------------------------------------------------------------------------- ffmpeg path


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p10le", "gray", "yuv444p12le"])
def test_ffv1_mkv_round_trip_bit_exact(tmp_path, fmt):
    clip = make_clip(fmt, 15, 9, 4, seed=1)
    path = tmp_path / "v.mkv"
    write_video(path, info_for(clip, Fraction(120000, 1001)), clip)
    info, back = read_video(path)
    assert info.pix_fmt.name == fmt and info.num_frames == 4 and info.name == "v"
    assert info.fps == Fraction(120000, 1001)  # exact via our tag, although mkv alone would say 120
    assert_same(clip, back)
    assert os.listdir(tmp_path) == ["v.mkv"]


def test_ffv1_keeps_full_range_tag_without_converting(tmp_path):
    clip = make_clip("yuv420p", 16, 8, 2, seed=3)
    path = tmp_path / "full.mkv"
    write_video(path, info_for(clip, Fraction(25), X="COLORRANGE=FULL"), clip)
    info, back = read_video(path)
    assert "COLORRANGE=FULL" in info.extra["X"].split()
    assert_same(clip, back)


def test_lossless_x264_mp4_reads_back_exact(tmp_path):
    clip = make_clip("yuv420p", 32, 16, 5, seed=2)
    src = tmp_path / "src.y4m"
    write_video(src, info_for(clip, Fraction(25)), clip)
    mp4 = tmp_path / "lossless.mp4"
    run_ffmpeg(["-i", str(src), "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                str(mp4)], what="making a test mp4")
    with open_video(mp4) as r:
        assert (r.info.width, r.info.height, r.info.num_frames, r.info.fps) == (32, 16, 5, Fraction(25))
        assert r.info.pix_fmt.name == "yuv420p"
        assert_same(clip, r.read())


def test_variable_rate_input_is_resampled_to_a_constant_rate(tmp_path):
    vfr = tmp_path / "vfr.mkv"  # 10 frames; the last five are 3 frame periods apart
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=16x8:rate=25", "-frames:v", "10",
                "-vf", "setpts='if(lt(N,5),N,N*3)/25/TB'", "-fps_mode", "vfr", "-c:v", "ffv1", str(vfr)],
               what="making a variable-rate test file")
    with open_video(vfr) as r:
        assert r.info.fps == 25 and r.info.num_frames > 20  # duration kept, frames repeated to fill it
        assert len(r.read()) == r.info.num_frames


def test_audio_only_input_has_no_video_stream(tmp_path):
    wav = tmp_path / "tone.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=0.1", str(wav)], what="making a test wav")
    with pytest.raises(InputError, match="no video stream"):
        open_video(wav)


def test_parse_probe_and_pixel_format_choice():
    stderr = (
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n"
        "  Stream #0:0[0x1](und): Video: mjpeg (Baseline), yuvj422p(pc, bt470bg/unknown/unknown), 64x48, 25 fps"
        " (attached pic)\n"
        "  Stream #0:1[0x2](und): Video: hevc (Main 10), yuv420p10le(tv, bt2020nc/bt2020/smpte2084), 3840x2160\n"
        "    Metadata:\n      handler_name    : VideoHandler\n      NERVCODEC_FPS   : 60000/1001\n"
        "  Stream #0:2: Audio: aac, 48000 Hz\n"
        "Stream mapping:\n  Stream #0:1 -> #0:0 (copy)\n"
        "frame=   10 fps=0.0\rframe=  240 fps=0.0 q=-1.0 Lsize=N/A\n"
    )
    p = parse_probe(stderr)
    assert (p.codec, p.pix_fmt, p.num_frames) == ("hevc", "yuv420p10le", 240)
    assert p.metadata["NERVCODEC_FPS"] == "60000/1001"
    expect = {"yuv420p": "yuv420p", "yuvj420p": "yuv420p", "nv12": "yuv420p", "yuv422p": "yuv422p",
              "yuvj444p": "yuv444p", "rgb24": "yuv444p", "bgra": "yuv444p", "gbrp10le": "yuv444p10le",
              "yuv420p10le": "yuv420p10le", "p010le": "yuv420p10le", "yuv422p10le": "yuv422p10le",
              "yuv420p12le": "yuv420p12le", "yuv422p12le": "yuv444p12le", "rgb48be": "yuv444p12le",
              "gray": "gray", "gray12le": "gray10le", "bayer_rggb8": "yuv420p"}
    assert {k: choose_pix_fmt(k).name for k in expect} == expect


# --------------------------------------------------------------------------- writers


def test_png_sequence_written_into_folder_and_pattern(tmp_path):
    clip = make_clip("yuv420p", 16, 8, 3)
    out = tmp_path / "frames"
    write_video(str(out) + "/", info_for(clip), clip)
    assert sorted(os.listdir(out)) == ["00001.png", "00002.png", "00003.png"]
    assert (out / "00001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    deep = make_clip("yuv444p10le", 5, 3, 2)
    write_video(tmp_path / "deep" / "f_%03d.png", info_for(deep), deep)
    assert sorted(os.listdir(tmp_path / "deep")) == ["f_001.png", "f_002.png"]
    with open_video(tmp_path / "deep" / "f_%03d.png") as r:  # the PNG reader reads the pattern back (RGB -> 4:4:4)
        assert (r.info.num_frames, r.info.pix_fmt.name) == (2, "yuv444p12le")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "frames"]  # temporary folders are gone
    with pytest.raises(OutputError, match="frame-number"):
        open_writer(tmp_path / "x%d_%d.png", info_for(deep))


@pytest.mark.parametrize("name", ["old.y4m", "old.mkv", "pngs/"])
def test_abort_keeps_existing_target_and_leaves_no_temporary(tmp_path, name):
    clip = make_clip("yuv420p", 8, 8, 2)
    target = tmp_path / name
    if name.endswith("/"):
        target.mkdir()
        (target / "00001.png").write_bytes(b"old")
        keep = target / "00001.png"
    else:
        target.write_bytes(b"old")
        keep = target
    before = sorted(os.listdir(tmp_path))
    w = open_writer(str(target) + ("/" if name.endswith("/") else ""), info_for(clip))
    w.write(clip)
    w.abort()
    assert keep.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == before
    with pytest.raises(RuntimeError):
        with open_writer(target, info_for(clip)) as w2:
            w2.write(clip)
            raise RuntimeError("boom")
    assert keep.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == before
    with pytest.raises(OutputError, match="aborted"):
        w2.close()


def test_writer_rejects_mismatched_frames_and_bad_targets(tmp_path):
    clip = make_clip("yuv420p", 8, 8, 1)
    with pytest.raises(OutputError, match="output format"):
        open_writer(tmp_path / "x.avi", info_for(clip))
    with pytest.raises(OutputError, match=r"numbered sequence.*frames/%05d\.png \(one frame gives frames/00001\.png\)"):
        open_writer(tmp_path / "x.png", info_for(clip))
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(OutputError, match="does not exist"):
        open_writer(tmp_path / "missing" / "x.y4m", info_for(clip))
    with open_writer(tmp_path / "x.y4m", info_for(clip)) as w:
        with pytest.raises(OutputError, match="yuv444p"):
            w.write(make_clip("yuv444p", 8, 8, 1))
    assert not (tmp_path / "x.y4m").exists()  # the failed write aborted the writer
    assert os.listdir(tmp_path) == []
