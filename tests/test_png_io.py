"""PNG sequences: imageio reads and writes the files, ffmpeg converts the colours.

The reference for every pixel is the path nervcodec used before (ffmpeg alone: the
image2 demuxer for reading, the PNG encoder for writing), so these tests pin that
the split changed no sample.  Clips are tiny and made here with numpy.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import make_clip as smooth_clip
from nervcodec.errors import ConfigError, InputError
from nervcodec.io import (DEFAULT_PNG_FPS, Frames, PNGSequenceReader, VideoInfo, open_video, open_writer,
                          parse_fps, pixel_format, read_video, write_video)
from nervcodec.io import png as png_mod
from nervcodec.io.png import read_png_header
from nervcodec.io.reader import FFmpegVideoReader
from nervcodec.tools.ffmpeg import SWS_FLAGS, run_ffmpeg

W, H, N = 17, 9, 4
RNG_SEED = 7


def assert_same(a: Frames, b: Frames) -> None:
    assert a.pix_fmt == b.pix_fmt and len(a.planes) == len(b.planes)
    for pa, pb in zip(a.planes, b.planes):
        assert pa.dtype == pb.dtype and pa.shape == pb.shape
        np.testing.assert_array_equal(pa, pb)


def noise_clip(fmt: str, width: int = W, height: int = H, n: int = N, seed: int = 0) -> Frames:
    pf = pixel_format(fmt)
    rng = np.random.default_rng(seed)
    return Frames(tuple(rng.integers(0, pf.max_value + 1, (n, h, w)).astype(pf.dtype)
                        for h, w in pf.plane_shapes(width, height)), pf)


def info_for(frames: Frames, fps: Fraction = Fraction(25), **extra: str) -> VideoInfo:
    return VideoInfo(frames.width, frames.height, frames.pix_fmt, fps, frames.num_frames, "clip", dict(extra))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_low_bit_grey(path: Path, values: np.ndarray, bits: int) -> None:
    """A 1/2/4-bit greyscale PNG by hand (Pillow does not write those)."""
    rows = []
    for row in values:
        packed = np.packbits(np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bits:].ravel())
        rows.append(b"\0" + packed.tobytes())
    h, w = values.shape
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, 0, 0, 0, 0))
                     + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b""))


def make_pngs(folder: Path, kind: str, n: int = N, width: int = W, height: int = H, seed: int = RNG_SEED,
              names=None) -> Path:
    """n PNG files of one kind (00001.png ...) with random content; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = names or [f"{i + 1:05d}.png" for i in range(n)]
    if kind in ("rgb48be", "rgba64be", "ya16be"):  # 16-bit colour: written by ffmpeg (Pillow cannot)
        for i, name in enumerate(names):
            raw = rng.integers(0, 65536, (height, width, 4)).astype(">u2").tobytes()
            run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgba64be", "-s", f"{width}x{height}", "-i", "-",
                        "-pix_fmt", kind, "-frames:v", "1", "-f", "image2", "-update", "1", str(folder / name)],
                       input=raw)
        return folder
    for name in names:
        rgb = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        path = folder / name
        if kind == "rgb":
            iio.imwrite(path, rgb)
        elif kind == "rgba":
            iio.imwrite(path, np.dstack([rgb, rng.integers(0, 256, (height, width, 1)).astype(np.uint8)]))
        elif kind == "grey":
            iio.imwrite(path, rgb[..., 0])
        elif kind == "grey+alpha":
            iio.imwrite(path, rgb[..., :2])
        elif kind == "grey16":
            iio.imwrite(path, rng.integers(0, 65536, (height, width)).astype(np.uint16))
        elif kind == "palette":
            Image.fromarray(rgb).convert("P").save(path)
        elif kind == "bw":
            Image.fromarray(rgb[..., 0]).convert("1").save(path)
        elif kind in ("grey2", "grey4"):
            bits = int(kind[-1])
            write_low_bit_grey(path, rng.integers(0, 1 << bits, (height, width)), bits)
        else:  # pragma: no cover
            raise ValueError(kind)
    return folder


def old_reader(pattern: Path) -> FFmpegVideoReader:
    """The path every PNG sequence took before: ffmpeg's image2 demuxer and PNG decoder."""
    return FFmpegVideoReader(str(pattern), pattern.parent.name)


# --------------------------------------------------------------------------- reading


KINDS = ["rgb", "rgba", "grey", "grey+alpha", "grey16", "bw", "grey2", "grey4", "palette", "rgb48be", "rgba64be",
         "ya16be"]


@pytest.mark.parametrize("kind", KINDS)
def test_png_inputs_give_exactly_the_old_image2_planes(tmp_path, kind):
    folder = make_pngs(tmp_path / kind.replace("+", "_"), kind)
    pattern = folder / "%05d.png"
    with old_reader(pattern) as old:
        want, want_info = old.read(), old.info
    for source in (pattern, folder, str(folder) + "/"):
        with open_video(source) as r:
            assert isinstance(r, PNGSequenceReader)
            info = r.info
            assert (info.width, info.height, info.num_frames, info.fps) == (W, H, N, Fraction(25))
            assert info.pix_fmt == want_info.pix_fmt and info.extra == want_info.extra
            assert info.name == folder.name
            assert_same(want, r.read())


def test_imageio_reads_all_but_palette_and_16_bit_colour(tmp_path):
    """imageio reads the files it holds exactly; the rest is decoded by ffmpeg (see nervcodec.io.png)."""
    expect = {"rgb": True, "rgba": True, "grey": True, "grey+alpha": True, "grey16": True, "bw": True,
              "palette": False, "rgb48be": False, "rgba64be": False, "ya16be": False}
    got = {}
    for kind in expect:
        folder = make_pngs(tmp_path / kind.replace("+", "_"), kind, n=1)
        got[kind] = read_png_header(str(folder / "00001.png")).read_by_imageio
    assert got == expect


def test_imageio_is_what_reads_the_files(tmp_path, monkeypatch):
    folder = make_pngs(tmp_path / "f", "rgb", n=3)
    seen = []
    real = png_mod.iio.imread

    def spy(path, *a, **kw):
        seen.append(os.path.basename(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(png_mod.iio, "imread", spy)
    with open_video(folder) as r:
        r.read(1, 3)
    assert seen == ["00001.png", "00002.png", "00003.png"]  # the first at open (for the header), then 2 and 3


def test_iter_frames_ranges_and_batches_match_read(tmp_path, monkeypatch):
    monkeypatch.setattr(png_mod, "CHUNK_FRAMES", 3)  # several ffmpeg runs inside one batch
    folder = make_pngs(tmp_path / "f", "rgb", n=11)
    with open_video(folder) as r:
        full = r.read()
        with old_reader(folder / "%05d.png") as old:
            assert_same(old.read(), full)
        for start, stop, batch in [(0, None, 4), (3, 8, 2), (8, 3, 2), (10, 11, 5), (-4, None, 3), (5, 99, 16),
                                   (0, 11, 7)]:
            got = list(r.iter_frames(batch=batch, start=start, stop=stop))
            want = full[slice(start, stop)]
            # exact batch sizes (the last may be short): readers zipped batch by batch stay aligned
            assert [len(b) for b in got] == [min(batch, len(want) - k) for k in range(0, len(want), batch)]
            if len(want):
                assert_same(want, Frames.concat(got))


def test_folder_order_is_natural_and_pattern_scans_for_its_first_number(tmp_path, caplog):
    folder = make_pngs(tmp_path / "nat", "grey", names=["f1.png", "f10.png", "f2.png", "f9.png"])
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"not a frame")
    with open_video(folder) as r:
        assert [os.path.basename(f) for f in r.files] == ["f1.png", "f2.png", "f9.png", "f10.png"]
        by_folder = r.read()
    # A pattern starts at its smallest number (7 here, beyond image2's 0..4) and stops at the first gap.
    seq = make_pngs(tmp_path / "seq", "grey", names=["a_007.png", "a_008.png", "a_009.png", "a_011.png"])
    with caplog.at_level(logging.WARNING, logger="nervcodec.png"):
        with open_video(seq / "a_%03d.png") as r:
            assert [os.path.basename(f) for f in r.files] == ["a_007.png", "a_008.png", "a_009.png"]
            assert r.info.num_frames == 3 and r.info.name == "seq"
    assert "1 later file(s)" in caplog.text
    # f%d.png over the natural folder: 1, 2 then a gap at 3
    with open_video(folder / "f%d.png") as r:
        assert r.info.num_frames == 2
        assert_same(by_folder[0:2], r.read())


def test_fps_is_honoured_and_stored(tmp_path):
    folder = make_pngs(tmp_path / "f", "rgb", n=2)
    assert read_video(folder)[0].fps == DEFAULT_PNG_FPS == 25
    for given, want in [("30000/1001", Fraction(30000, 1001)), (Fraction(24000, 1001), Fraction(24000, 1001)),
                        (50, Fraction(50)), (29.97, Fraction(2997, 100)), ("12.5", Fraction(25, 2))]:
        info, frames = read_video(folder / "%05d.png", fps=given)
        assert info.fps == want and len(frames) == 2
        with open_video(folder, fps=given) as r:
            assert r.info.fps == want
    with open_video(folder, fps="30000/1001") as r:
        out = tmp_path / "clip.y4m"
        write_video(out, r.info, r.read())
    assert b" F30000:1001 " in out.read_bytes().split(b"\n", 1)[0]
    assert read_video(out)[0].fps == Fraction(30000, 1001)


@pytest.mark.parametrize("bad", ["0", "-25", "abc", "1/0", float("nan"), float("inf"), True, [25]])
def test_bad_fps_is_a_config_error(tmp_path, bad):
    with pytest.raises(ConfigError, match="--fps"):
        parse_fps(bad)


def test_fps_is_refused_for_inputs_with_their_own_rate(tmp_path):
    clip = noise_clip("yuv420p", n=2)
    y4m_path = tmp_path / "c.y4m"
    write_video(y4m_path, info_for(clip), clip)
    mkv_path = tmp_path / "c.mkv"
    write_video(mkv_path, info_for(clip), clip)
    for path in (y4m_path, mkv_path):
        with pytest.raises(ConfigError, match="only to PNG-sequence inputs"):
            open_video(path, fps=30)
        with open_video(path) as r:  # without fps they read as before
            assert r.info.fps == 25


def _one_line_input_error(path, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as exc:
        open_video(path)
    assert "\n" not in str(exc.value)
    return exc.value


def test_bad_sequences_give_one_line_input_errors(tmp_path):
    mixed = make_pngs(tmp_path / "mixed", "rgb", n=3)
    make_pngs(mixed, "rgb", width=W + 1, names=["00003.png"])
    err = _one_line_input_error(mixed, "share size and mode")
    assert "00003.png" in str(err) and f"{W + 1}x{H}" in str(err)
    _one_line_input_error(mixed / "%05d.png", "00003.png")

    modes = make_pngs(tmp_path / "modes", "rgb", n=2)
    make_pngs(modes, "grey", names=["00002.png"])
    assert "8-bit grey" in str(_one_line_input_error(modes, "00002.png.*share size and mode"))

    (tmp_path / "empty").mkdir()
    _one_line_input_error(tmp_path / "empty", "empty folder")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"\xff\xd8")
    (other / "b.txt").write_text("x")
    _one_line_input_error(other, "folder without .png files")
    _one_line_input_error(tmp_path / "nothing" / "%05d.png", "not found")
    _one_line_input_error(other / "%05d.png", "no file matches")
    _one_line_input_error(other / "%d_%d.png", "exactly one frame-number field")

    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "00001.png").write_bytes(b"GIF89a not a png at all, just some bytes here")
    _one_line_input_error(fake, "00001.png: not a PNG file")
    broken = make_pngs(tmp_path / "broken", "rgb", n=2)
    data = (broken / "00002.png").read_bytes()
    (broken / "00002.png").write_bytes(data[:40] + b"\0" * 20)  # header fine, pixel data damaged
    with open_video(broken) as r:  # the first frame is fine; the damage shows when frame 2 is read
        with pytest.raises(InputError, match="00002.png") as exc:
            r.read()
        assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- writing


def old_png_writer(folder: Path, info: VideoInfo, frames: Frames) -> None:
    """The former writer: raw planes into ffmpeg, which converted and wrote the PNG files itself."""
    folder.mkdir()
    rgb = "rgb24" if info.pix_fmt.bit_depth <= 8 else "rgb48be"
    args = ["-f", "rawvideo", "-pix_fmt", info.pix_fmt.name, "-s", f"{info.width}x{info.height}",
            "-framerate", "25", "-i", "pipe:", "-map", "0:v:0", "-fps_mode", "passthrough"]
    if "COLORRANGE=FULL" in info.extra.get("X", ""):
        args += ["-vf", "setparams=range=pc"]
    args += ["-sws_flags", SWS_FLAGS, "-pix_fmt", rgb, "-c:v", "png", "-start_number", "1", "-f", "image2",
             str(folder / "%05d.png")]
    run_ffmpeg(args, input=b"".join(frames.to_bytes(i) for i in range(frames.num_frames)))


def png_pixels(folder: Path) -> np.ndarray:
    """Decoded RGB of every file (ffmpeg decodes, so 16-bit files are read exactly too)."""
    names = sorted(os.listdir(folder))
    head = read_png_header(str(folder / names[0]))
    deep = head.bit_depth == 16
    data = b"".join((folder / name).read_bytes() for name in names)
    raw = run_ffmpeg(["-f", "png_pipe", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb48le" if deep else "rgb24", "-"],
                     input=data, capture_stdout=True)
    return np.frombuffer(raw, "<u2" if deep else np.uint8).reshape(len(names), head.height, head.width, 3)


@pytest.mark.parametrize("fmt, extra", [("yuv420p", {}), ("yuv420p", {"X": "COLORRANGE=FULL"}), ("yuv422p", {}),
                                        ("yuv444p", {}), ("gray", {}), ("yuv420p10le", {}),
                                        ("yuv444p10le", {"X": "COLORRANGE=FULL"}), ("gray10le", {}),
                                        ("yuv444p12le", {})])
def test_writer_pixels_equal_the_old_ffmpeg_writer(tmp_path, fmt, extra):
    clip = noise_clip(fmt, n=3, seed=5)
    info = info_for(clip, **extra)
    old_png_writer(tmp_path / "old", info, clip)
    write_video(str(tmp_path / "new") + "/", info, clip)
    assert sorted(os.listdir(tmp_path / "new")) == ["00001.png", "00002.png", "00003.png"]
    np.testing.assert_array_equal(png_pixels(tmp_path / "new"), png_pixels(tmp_path / "old"))
    head = read_png_header(str(tmp_path / "new" / "00001.png"))
    assert (head.bit_depth, head.colour_type) == ((8 if clip.pix_fmt.bit_depth == 8 else 16), 2)
    if clip.pix_fmt.bit_depth == 8:  # imageio reads back what imageio wrote, equal to ffmpeg's reading
        np.testing.assert_array_equal(np.stack([iio.imread(tmp_path / "new" / f"{i:05d}.png") for i in (1, 2, 3)]),
                                      png_pixels(tmp_path / "new"))


def test_imageio_writes_the_8_bit_files(tmp_path, monkeypatch):
    from nervcodec.io import writer as writer_mod
    written = []
    real = writer_mod.iio.imwrite

    def spy(path, image, *a, **kw):
        written.append((os.path.basename(path), image.shape, image.dtype))
        return real(path, image, *a, **kw)

    monkeypatch.setattr(writer_mod.iio, "imwrite", spy)
    clip = noise_clip("yuv420p", n=2)
    write_video(tmp_path / "out" / "f_%03d.png", info_for(clip), clip)
    assert written == [("f_001.png", (H, W, 3), np.uint8), ("f_002.png", (H, W, 3), np.uint8)]


def test_writer_numbers_across_batches_and_chunks(tmp_path, monkeypatch):
    from nervcodec.io.writer import PNGSequenceWriter
    monkeypatch.setattr(PNGSequenceWriter, "CHUNK_FRAMES", 2)
    clip = noise_clip("yuv420p10le", n=5, seed=2)
    with open_writer(tmp_path / "deep" / "%03d.png", info_for(clip)) as w:
        w.write(clip[0:3])
        w.write(clip[3:5])
        assert [n for n in os.listdir(tmp_path) if not n.startswith(".")] == []  # nothing published yet
        assert not (tmp_path / "deep").exists()
    assert sorted(os.listdir(tmp_path / "deep")) == [f"{i:03d}.png" for i in range(1, 6)]
    old_png_writer(tmp_path / "old", info_for(clip), clip)
    np.testing.assert_array_equal(png_pixels(tmp_path / "deep"), png_pixels(tmp_path / "old"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "old"]  # the temporary folder is gone


def test_write_then_read_round_trip_of_an_8_bit_clip(tmp_path):
    # Smooth RGB frames, so that their YUV is inside the RGB gamut and converts back without clipping.
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = np.stack([np.stack([128 + 90 * np.sin(0.2 * xx + 0.3 * t + c) * np.cos(0.15 * yy - 0.2 * t)
                              for c in range(3)], axis=-1) for t in range(5)])
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    make_pngs(tmp_path / "src", "rgb", n=0)
    for i, frame in enumerate(rgb):
        iio.imwrite(tmp_path / "src" / f"{i + 1:05d}.png", frame)
    src_info, src = read_video(tmp_path / "src", fps="30000/1001")
    assert src_info.pix_fmt.name == "yuv444p"

    write_video(str(tmp_path / "frames") + "/", src_info, src)
    back_info, back = read_video(tmp_path / "frames", fps=src_info.fps)
    assert (back_info.width, back_info.height, back_info.num_frames) == (32, 24, 5)
    assert back_info.pix_fmt.name == "yuv444p" and back_info.fps == Fraction(30000, 1001)
    assert back_info.name == "frames"
    # 8-bit YUV -> 8-bit RGB -> 8-bit YUV loses only rounding
    for a, b in zip(src.planes, back.planes):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.abs(png_pixels(tmp_path / "frames").astype(int) - rgb).max() <= 3


def test_a_10_bit_clip_writes_16_bit_pngs_and_reads_back_deep(tmp_path):
    _, clip = smooth_clip(width=20, height=12, frames=3, pix_fmt="yuv420p10le")
    # keep the colours inside the RGB gamut (mid luma, pale chroma), so that nothing clips on the way
    y, u, v = (p.astype(np.int64) for p in clip.planes)
    clip = Frames(((200 + y * 600 // 1023).astype(np.uint16), (512 + (u - 512) // 8).astype(np.uint16),
                   (512 + (v - 512) // 8).astype(np.uint16)), clip.pix_fmt)
    write_video(tmp_path / "deep" / "%05d.png", info_for(clip), clip)
    for name in sorted(os.listdir(tmp_path / "deep")):
        head = read_png_header(str(tmp_path / "deep" / name))
        assert (head.bit_depth, head.colour_type, head.width, head.height) == (16, 2, 20, 12)
    info, back = read_video(tmp_path / "deep")
    assert info.pix_fmt.name == "yuv444p12le" and info.num_frames == 3
    luma = back.planes[0].astype(np.int64)  # 12 bits
    assert np.abs(luma - 4 * clip.planes[0].astype(np.int64)).max() <= 4  # within one 10-bit step


# --------------------------------------------------------------------------- the command line


def test_png_sequence_encodes_and_decodes_through_the_cli(tmp_path):
    from nervcodec.cli import cli

    _, clip = smooth_clip(width=24, height=16, frames=4, pix_fmt="yuv444p")
    write_video(tmp_path / "frames" / "%05d.png", info_for(clip), clip)
    src_info, src = read_video(tmp_path / "frames" / "%05d.png")

    def run(*args):
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    out = tmp_path / "clip.nerv"
    report = json.loads(run("encode", tmp_path / "frames" / "%05d.png", out, "--model", "nerv", "--params", "2000",
                            "--epochs", "1", "--device", "cpu", "--json", "--fps", "30000/1001"))
    assert report["frames"] == 4 and out.is_file()
    assert json.loads(run("info", out, "--json"))["videos"][0]["fps"] == "30000/1001"
    run("decode", out, "-o", tmp_path / "decoded" / "%05d.png")
    assert sorted(os.listdir(tmp_path / "decoded")) == [f"{i:05d}.png" for i in range(1, 5)]
    info, dec = read_video(tmp_path / "decoded")
    assert (info.width, info.height, info.num_frames, info.pix_fmt) == (24, 16, 4, src_info.pix_fmt)
    # a folder of PNGs is an input too
    out2 = tmp_path / "folder.nerv"
    json.loads(run("encode", tmp_path / "frames", out2, "--model", "nerv", "--params", "2000", "--epochs", "1",
                   "--device", "cpu", "--json"))
    assert out2.is_file()


def test_fps_without_a_png_input_is_refused_on_the_cli(tmp_path):
    from nervcodec.cli import cli

    _, clip = smooth_clip(width=24, height=16, frames=2, pix_fmt="yuv420p")
    write_video(tmp_path / "a.y4m", info_for(clip), clip)
    res = CliRunner().invoke(cli, ["encode", str(tmp_path / "a.y4m"), str(tmp_path / "o.nerv"), "--fps", "25"])
    assert res.exit_code == 4 and "PNG-sequence" in res.stderr and not (tmp_path / "o.nerv").exists()
