"""The adapter's command-line builder (ffmpeg-python compiles the lists; nothing runs but one smoke test)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nervcodec.tools.ffmpeg import build_args, run_ffmpeg


def test_one_input_streams_options_and_order():
    args = build_args("in.mp4", "out.y4m", input_options={"ss": 2, "c:v": "h264"}, streams=["0:V:0"],
                      output_options={"pix_fmt": "yuv420p", "strict": -1, "f": "yuv4mpegpipe", "r": Fraction(30000, 1001),
                                      "an": None, "metadata:s:v:0": "A=1"})
    # input options before their -i; -map first among the output's options, then -f, then the rest by name
    assert args == ["-c:v", "h264", "-ss", "2", "-i", "in.mp4", "-map", "0:V:0", "-f", "yuv4mpegpipe", "-an",
                    "-metadata:s:v:0", "A=1", "-pix_fmt", "yuv420p", "-r", "30000/1001", "-strict", "-1",
                    "out.y4m"]


def test_without_streams_ffmpeg_chooses_and_global_args_come_first():
    assert build_args("-", "-", input_options={"f": "rawvideo", "s": "4x2"}, output_options={"f": "null"},
                      global_args=["-loglevel", "info", "-stats"]) == [
        "-loglevel", "info", "-stats", "-f", "rawvideo", "-s", "4x2", "-i", "-", "-f", "null", "-"]


def test_several_maps_keep_their_order_and_inputs_theirs():
    args = build_args(["b.mkv", "a.mkv"], "o.mkv", input_options=[None, {"itsoffset": 1}],
                      streams=["0:v:0", "1:a:0", "0:s"], output_options={"c": "copy"})
    assert args == ["-i", "b.mkv", "-itsoffset", "1", "-i", "a.mkv", "-map", "0:v:0", "-map", "1:a:0",
                    "-map", "0:s", "-c", "copy", "o.mkv"]
    with pytest.raises(ValueError, match="in their order"):  # ffmpeg-python would renumber the inputs
        build_args(["b.mkv", "a.mkv"], "o.mkv", streams=["1:a:0", "0:v:0"])


def test_a_filter_over_two_inputs_and_a_repeated_input():
    args = build_args(["d.y4m", "r.y4m"], "-", streams=["0:v", "1:v"],
                      filter=("libvmaf", {"log_path": "/x/a:b,c.json", "n_threads": 2}), output_options={"f": "null"})
    assert args == ["-i", "d.y4m", "-i", "r.y4m", "-filter_complex",
                    "[0:v][1:v]libvmaf=log_path=/x/a\\\\:b\\,c.json:n_threads=2[s0]", "-map", "[s0]",
                    "-f", "null", "-"]
    # ffmpeg-python would merge two identical inputs into one; the repeat gets an equivalent file: name
    same = build_args(["r.y4m", "r.y4m"], "-", streams=["0:v", "1:v"], filter=("psnr", {}),
                      output_options={"f": "null"})
    assert same[:2] == ["-i", "r.y4m"] and same[2] == "-i" and same[3].startswith("file:/")
    assert same[3].endswith("/./r.y4m")


@pytest.mark.parametrize("call, exc", [
    (lambda: build_args("a", "b", output_options={"-f": "null"}), ValueError),
    (lambda: build_args("a", "b", output_options={"format": "null"}), ValueError),
    (lambda: build_args("a", "b", output_options={"map": ["0", "1"]}), TypeError),
    (lambda: build_args("a", "b", output_options={"y": True}), TypeError),
    (lambda: build_args("a", "b", streams=["1:v"]), ValueError),
    (lambda: build_args(["a", "c"], "b", streams=["0:v"]), ValueError),
    (lambda: build_args(["a", "c"], "b", input_options={"f": "x"}), ValueError),
    (lambda: build_args(["a", "c"], "b", input_options=[{}]), ValueError),
    (lambda: build_args(["-", "-"], "b"), ValueError),
    (lambda: build_args([], "b"), ValueError),
])
def test_mistakes_are_refused(call, exc):
    with pytest.raises(exc):
        call()


def test_a_built_command_runs():
    raw = np.arange(4 * 2 * 3, dtype=np.uint8).tobytes()
    args = build_args("-", "-", input_options={"f": "rawvideo", "pix_fmt": "rgb24", "s": "4x2"}, streams=["0:v:0"],
                      output_options={"f": "rawvideo", "pix_fmt": "rgb24", "frames:v": 1})
    assert run_ffmpeg(args, input=raw, capture_stdout=True) == raw
