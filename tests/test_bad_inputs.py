"""Bad input to `nervcodec encode` / `decode` / `info`: each works, or fails with one clear line.

Every failing case must give a non-zero exit code, exactly one line on stderr (no
traceback, no "internal error") and leave no output file and no temporary file.
Every working case must give a file that decodes to the source's size, pixel format
and frame count.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.io import read_video, write_video
from nervcodec.tools.ffmpeg import run_ffmpeg

from conftest import make_clip

FAST = ["--model", "nerv", "--params", "2000", "--epochs", "1", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_failure(res, *needles, code=None):
    assert res.exit_code != 0, res.output
    if code is not None:
        assert res.exit_code == code, res.output
    assert res.exit_code != 70, res.output            # 70 = an unexpected exception (a bug)
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    err = res.stderr.strip()
    assert "Traceback" not in res.output
    assert err.count("\n") == 0 and err.startswith("nervcodec: error: "), err
    for n in needles:
        assert n in err, err
    return err


def assert_folder_clean(folder: Path, expected: set):
    assert {p.name for p in folder.iterdir()} == expected


# --------------------------------------------------------------------------- inputs that must fail


def _y4m_header_only(path: Path, header: str = "YUV4MPEG2 W16 H16 F25:1 C420jpeg\n") -> Path:
    path.write_bytes(header.encode())
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "missing": (lambda d: d / "missing.y4m", ["missing.y4m", "not found"]),
    "empty_y4m": (lambda d: _write(d / "empty.y4m", b""), ["empty"]),
    "empty_mp4": (lambda d: _write(d / "empty.mp4", b""), ["empty"]),
    "text": (lambda d: _write(d / "notes.mp4", b"not a video, just words\n" * 40), ["notes.mp4"]),
    "noise": (lambda d: _write(d / "noise.mkv", np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes()),
              ["noise.mkv", "not a video"]),
    "zero_frames": (lambda d: _y4m_header_only(d / "zero.y4m"), ["no frames"]),
    "huge_declared": (lambda d: _y4m_header_only(d / "huge.y4m", "YUV4MPEG2 W100000 H100000 F25:1\n"),
                      ["100000x100000", "too large"]),
    "truncated_frame": (lambda d: _write(d / "cut.y4m", b"YUV4MPEG2 W16 H16 F25:1\nFRAME\n" + b"\x80" * 100),
                        ["truncated"]),
    "folder": (lambda d: (d / "adir").mkdir() or d / "adir", ["folder"]),
    "zero_rate": (lambda d: _y4m_header_only(d / "rate.y4m", "YUV4MPEG2 W16 H16 F0:0\n"), ["frame rate"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line(tmp_path, case):
    make, needles = BAD_INPUTS[case]
    src = make(tmp_path)
    before = {p.name for p in tmp_path.iterdir()}
    res = invoke("encode", src, tmp_path / "out.nerv", *FAST)   # progress on: nothing must be printed first
    assert_one_line_failure(res, *needles, code=2)
    assert_folder_clean(tmp_path, before)


# --------------------------------------------------------------------------- inputs that must work


def _check_roundtrip(tmp_path: Path, src: Path, width: int, height: int, frames: int, pix_fmt: str,
                     extra=()):
    out, dec = tmp_path / "out.nerv", tmp_path / "dec.y4m"
    res = invoke("encode", src, out, *FAST, "-q", *extra)
    assert res.exit_code == 0, res.output
    res = invoke("decode", out, "-o", dec, "-q")
    assert res.exit_code == 0, res.output
    info, got = read_video(dec)
    assert (info.width, info.height, info.num_frames, info.pix_fmt.name) == (width, height, frames, pix_fmt)
    return info, got


@pytest.mark.parametrize("width, height, frames, pix_fmt", [
    (1, 1, 2, "yuv420p"),          # smallest frame (chroma 1x1)
    (15, 9, 2, "yuv420p"),         # odd sizes
    (12, 8, 1, "yuv420p"),         # a single frame
    (10, 6, 2, "yuv420p10le"),     # 10-bit
    (10, 6, 2, "gray"),
    (10, 6, 2, "yuv422p"),
])
def test_unusual_inputs_encode_and_decode(tmp_path, clip_file, width, height, frames, pix_fmt):
    src, _, _ = clip_file(width=width, height=height, frames=frames, pix_fmt=pix_fmt)
    _check_roundtrip(tmp_path, src, width, height, frames, pix_fmt)


def test_single_frame_dnerv(tmp_path, clip_file):
    src, _, _ = clip_file(width=16, height=16, frames=1)
    out = tmp_path / "one.nerv"
    res = invoke("encode", src, out, "--model", "dnerv", "--params", "6000", "--epochs", "1", "--clip-len", "2",
                 "--device", "cpu", "-q")
    if res.exit_code != 0:  # D-NeRV of one frame: must still be a clean, one-line refusal
        assert_one_line_failure(res)
        return
    res = invoke("decode", out, "-o", tmp_path / "one.y4m", "-q")
    assert res.exit_code == 0, res.output
    assert read_video(tmp_path / "one.y4m")[0].num_frames == 1


def test_variable_frame_rate_input(tmp_path):
    vfr = tmp_path / "vfr.mkv"  # 6 frames, the last three 3 periods apart: resampled to 25 fps on input
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=16x8:rate=25", "-frames:v", "6",
                "-vf", "setpts='if(lt(N,3),N,N*3)/25/TB'", "-fps_mode", "vfr", "-c:v", "ffv1", str(vfr)],
               what="making a variable-rate test file")
    info, _ = read_video(vfr)
    assert info.fps == 25
    dec_info, _ = _check_roundtrip(tmp_path, vfr, 16, 8, info.num_frames, info.pix_fmt.name)
    assert dec_info.fps == 25


# --------------------------------------------------------------------------- output paths


@pytest.fixture
def small_src(clip_file):
    return clip_file(width=12, height=8, frames=2)[0]


def test_existing_output_is_refused_without_force(tmp_path, small_src):
    out = tmp_path / "out.nerv"
    out.write_bytes(b"precious")
    res = invoke("encode", small_src, out, *FAST)
    assert_one_line_failure(res, "exists", "--force", code=5)
    assert out.read_bytes() == b"precious"
    res = invoke("encode", small_src, out, *FAST, "-q", "--force")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89NERV\r\n\x1a"
    assert_folder_clean(tmp_path, {small_src.name, "out.nerv"})


def test_output_equal_to_input_is_refused(tmp_path, small_src):
    data = small_src.read_bytes()
    for force in ([], ["--force"]):
        res = invoke("encode", small_src, small_src, *FAST, *force)
        assert_one_line_failure(res, "also an input", code=5)
        assert small_src.read_bytes() == data
    # the same file by another spelling, a symbolic link or a hard link
    (tmp_path / "sym.y4m").symlink_to(small_src)
    os.link(small_src, tmp_path / "hard.y4m")
    for other in (tmp_path / "." / small_src.name, tmp_path / "sym.y4m", tmp_path / "hard.y4m"):
        res = invoke("encode", small_src, other, *FAST, "--force")
        assert_one_line_failure(res, "also an input", code=5)
    assert small_src.read_bytes() == data


def test_unwritable_or_missing_output_folder(tmp_path, small_src):
    res = invoke("encode", small_src, tmp_path / "no" / "such" / "out.nerv", *FAST)
    assert_one_line_failure(res, "does not exist", code=5)
    if os.geteuid() == 0:   # root writes anywhere a permission allows: use a filesystem that refuses files
        target = Path("/sys/nervcodec-test.nerv")
        if not Path("/sys").is_dir():
            pytest.skip("no unwritable folder available to root")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        target = folder / "out.nerv"
    res = invoke("encode", small_src, target, *FAST)   # refused before fitting: no progress output
    assert_one_line_failure(res, "cannot write", code=5)
    assert not target.exists()


def test_output_is_a_folder(tmp_path, small_src):
    (tmp_path / "d.nerv").mkdir()
    res = invoke("encode", small_src, tmp_path / "d.nerv", *FAST, "--force")
    assert_one_line_failure(res, "directory", code=5)


# --------------------------------------------------------------------------- damaged .nerv files on the CLI


@pytest.fixture(scope="module")
def nerv_bytes(tmp_path_factory):
    d = tmp_path_factory.mktemp("nerv")
    info, fr = make_clip(width=12, height=8, frames=2)
    write_video(d / "c.y4m", info, fr)
    res = invoke("encode", d / "c.y4m", d / "c.nerv", *FAST, "-q")
    assert res.exit_code == 0, res.output
    return (d / "c.nerv").read_bytes()


def _recrc_header(data: bytes, edit) -> bytes:
    hlen = struct.unpack_from("<I", data, 10)[0]
    header = edit(bytearray(data[14:14 + hlen]))
    return (data[:10] + struct.pack("<I", len(header)) + bytes(header) + struct.pack("<I", zlib.crc32(bytes(header)))
            + data[18 + hlen:])


DAMAGE = {
    "bit_flip": (lambda b: b[:40] + bytes([b[40] ^ 4]) + b[41:], "damaged"),
    "truncated": (lambda b: b[:len(b) // 2], "truncated"),
    "trailing": (lambda b: b + b"\0", "trailing"),
    "not_nerv": (lambda b: b"GIF89a" + b[6:], "not a .nerv file"),
    "empty": (lambda b: b"", "not a .nerv file"),
    "newer_version": (lambda b: b[:8] + bytes([3, 0]) + b[10:], "upgrade nervcodec"),
    "bad_json_crc_ok": (lambda b: _recrc_header(b, lambda h: h.replace(b'"height":', b'"heigth":')), "heigth"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_file_is_one_line(tmp_path, nerv_bytes, case):
    damage, needle = DAMAGE[case]
    bad = tmp_path / "bad.nerv"
    bad.write_bytes(damage(nerv_bytes))
    for args in (["info", bad], ["decode", bad, "-o", tmp_path / "x.y4m"], ["decode", bad, "-o", tmp_path / "f/"]):
        res = invoke(*args)
        if case == "bad_json_crc_ok" and args[0] == "info":
            assert res.exit_code == 0, res.output   # info shows the stored description without building the model
            continue
        assert_one_line_failure(res, needle, code=3)
    assert_folder_clean(tmp_path, {"bad.nerv"})


def test_decode_bad_arguments_are_one_line(tmp_path, nerv_bytes):
    src = tmp_path / "c.nerv"
    src.write_bytes(nerv_bytes)
    for args, needle in [(["--frames", "5:9"], "outside"), (["--frames", "x"], "--frames"),
                         (["--video", "nope"], "no video named"), (["--batch", "0"], "--batch"),
                         (["--device", "cuda:7"], "cuda")]:
        res = invoke("decode", src, "-o", tmp_path / "x.y4m", *args)
        assert_one_line_failure(res, needle)
    res = invoke("decode", src, "-o", tmp_path / "x.avi")
    assert_one_line_failure(res, "output format")
    res = invoke("decode", src, "-o", tmp_path / "missing" / "x.y4m")
    assert_one_line_failure(res, "does not exist")
    assert_folder_clean(tmp_path, {"c.nerv"})
