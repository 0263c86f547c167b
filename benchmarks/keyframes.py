"""Rate-distortion and speed of the ffmpeg keyframe codecs on real clips.

Usage::

    PYTHONPATH=. python benchmarks/keyframes.py [clip ...] [--codecs hevc,av1,...] [--json out.json]

Every 8th frame of each clip (D-NeRV's keyframe spacing) is read with ffmpeg
as yuv420p, coded at a sweep of qualities, decoded, and scored:

* bytes/frame = ``packed_size(blobs) / n`` (what the .nerv file stores:
  per-frame blobs with the shared header counted once);
* PSNR-YUV = (6*PSNR_Y + PSNR_U + PSNR_V) / 8 per frame, averaged over frames;
* encode / decode seconds per frame (wall clock, including ffmpeg start-up).

It prints one table per clip, then a BD-rate summary against the anchor
(first codec variant) and the rate each codec needs at PSNR-YUV 32/35/38 dB
(log-rate interpolated), which is how docs/keyframes.md picks the default.
The learned (compressai) codecs are not measured: no pretrained weights can be
fetched on the development machine, and random weights say nothing about RD.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from typing import Dict, List, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nervcodec.io.video import Frames, pixel_format  # noqa: E402
from nervcodec.keyframes import packed_size  # noqa: E402
from nervcodec.keyframes.ffmpeg_codecs import (Av1Codec, FFmpegIntraCodec, HevcCodec, JxlCodec, VvcCodec,  # noqa: E402
                                              VvcInterCodec)
from nervcodec.tools.ffmpeg import run_ffmpeg  # noqa: E402

DEFAULT_CLIPS = [
    "/work/shared/data/people_qcif_48f.y4m",
    "/work/shared/data/carphone_pristine.mp4",
    "/work/shared/data/bikes.mp4",
]
STEP = 8

# (label, codec factory, qualities swept).  Sweeps are chosen so every codec
# spans roughly 28-45 dB PSNR-YUV on these clips with the same number of points
# (BD-rate needs equal counts).
VARIANTS = {
    "hevc": ("hevc (x265 slow)", lambda: HevcCodec("slow"), [51 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "hevc-medium": ("hevc (x265 medium)", lambda: HevcCodec("medium"), [51 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "hevc-veryslow": ("hevc (x265 veryslow)", lambda: HevcCodec("veryslow"),
                      [51 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "vvc": ("vvc (vvenc medium)", lambda: VvcCodec("medium"), [63 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "vvc-fast": ("vvc (vvenc fast)", lambda: VvcCodec("fast"), [63 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "vvc-faster": ("vvc (vvenc faster)", lambda: VvcCodec("faster"), [63 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "vvc-ra": ("vvc-ra (vvenc fast, random access: one stream)", lambda: VvcInterCodec("fast"),
               [63 - qp for qp in (17, 22, 27, 32, 37, 42)]),
    "av1": ("av1 (aom cpu-used 4)", lambda: Av1Codec(4), [63 - crf for crf in (12, 20, 28, 36, 44, 52)]),
    "av1-cpu6": ("av1 (aom cpu-used 6)", lambda: Av1Codec(6), [63 - crf for crf in (12, 20, 28, 36, 44, 52)]),
    "jxl": ("jxl (effort 7, per plane)", lambda: JxlCodec(7), [56, 48, 40, 32, 24, 16]),
}


def read_keyframes(path: str, step: int = STEP) -> Frames:
    """Decode ``path`` to yuv420p with ffmpeg and keep frames 0, step, 2*step, ..."""
    # a y4m pipe carries the size (there is no ffprobe in the bundle)
    y4m = run_ffmpeg(["-i", path, "-vf", f"select=not(mod(n\\,{step}))", "-fps_mode", "passthrough",
                      "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"], what="reading a clip", capture_stdout=True)
    header, _, rest = y4m.partition(b"\n")
    fields = {tok[:1]: tok[1:] for tok in header.split()[1:]}
    width, height = int(fields[b"W"]), int(fields[b"H"])
    fmt = pixel_format("yuv420p")
    per = fmt.frame_bytes(width, height)
    frames: List[Frames] = []
    pos = 0
    while pos < len(rest):
        nl = rest.index(b"\n", pos)  # "FRAME[params]\n"
        frames.append(Frames.from_bytes(rest[nl + 1:nl + 1 + per], fmt, width, height))
        pos = nl + 1 + per
    return Frames.concat(frames)


def psnr_yuv(ref: Frames, dec: Frames) -> float:
    """Mean over frames of (6*PSNR_Y + PSNR_U + PSNR_V) / 8 (PSNR capped at 100 dB)."""
    peak = float(ref.pix_fmt.max_value)
    weights = (6.0, 1.0, 1.0)
    per_frame = []
    for i in range(ref.num_frames):
        total = 0.0
        for w, a, b in zip(weights, ref.planes, dec.planes):
            mse = float(np.mean((a[i].astype(np.float64) - b[i].astype(np.float64)) ** 2))
            total += w * (100.0 if mse == 0 else min(100.0, 10 * math.log10(peak * peak / mse)))
        per_frame.append(total / sum(weights))
    return float(np.mean(per_frame))


def measure(codec: FFmpegIntraCodec, frames: Frames, qualities: Sequence[int]) -> List[Dict[str, float]]:
    rows = []
    n = frames.num_frames
    for q in qualities:
        t0 = time.perf_counter()
        blobs = codec.encode(frames, q)
        t1 = time.perf_counter()
        dec = codec.decode(blobs, frames.pix_fmt, frames.width, frames.height)
        t2 = time.perf_counter()
        rows.append({"quality": q, "bytes_per_frame": packed_size(blobs) / n, "psnr_yuv": psnr_yuv(frames, dec),
                     "enc_s_per_frame": (t1 - t0) / n, "dec_s_per_frame": (t2 - t1) / n})
    return rows


def rate_at(rows: List[Dict[str, float]], psnr: float) -> float:
    """Bytes/frame at a PSNR by linear interpolation of log-rate in PSNR (nan outside the sweep)."""
    pts = sorted((r["psnr_yuv"], math.log(r["bytes_per_frame"])) for r in rows)
    xs, ys = [p for p, _ in pts], [r for _, r in pts]
    if not xs[0] <= psnr <= xs[-1]:
        return float("nan")
    return float(math.exp(np.interp(psnr, xs, ys)))


def bd_rate(anchor: List[Dict[str, float]], test: List[Dict[str, float]]) -> float:
    from bjontegaard import bd_rate as _bd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(_bd([r["bytes_per_frame"] for r in anchor], [r["psnr_yuv"] for r in anchor],
                             [r["bytes_per_frame"] for r in test], [r["psnr_yuv"] for r in test],
                             method="akima", min_overlap=0.5))
        except Exception:  # too little overlap
            return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clips", nargs="*", default=DEFAULT_CLIPS)
    ap.add_argument("--codecs", default="hevc,hevc-medium,vvc,av1,av1-cpu6,jxl",
                    help=f"comma-separated variants, the first is the BD anchor (known: {', '.join(VARIANTS)})")
    ap.add_argument("--shift", type=int, default=0,
                    help="lower every swept quality by this much (5 moves the sweeps to about 30-45 dB)")
    ap.add_argument("--json", help="write all measurements here")
    args = ap.parse_args(argv)
    names = [c.strip() for c in args.codecs.split(",") if c.strip()]
    results: Dict[str, Dict[str, List[Dict[str, float]]]] = {}
    for clip in args.clips:
        frames = read_keyframes(clip)
        base = os.path.basename(clip)
        print(f"\n### {base}: {frames.num_frames} keyframes of {frames.width}x{frames.height} yuv420p\n")
        print("| codec | quality | bytes/frame | PSNR-YUV dB | enc s/frame | dec s/frame |")
        print("|---|---|---|---|---|---|")
        results[base] = {}
        for name in names:
            label, factory, qualities = VARIANTS[name]
            codec = factory()
            if not codec.available():
                print(f"| {label} | - | not in this ffmpeg | | | |")
                continue
            rows = measure(codec, frames, [q - args.shift for q in qualities])
            results[base][name] = rows
            for r in rows:
                print(f"| {label} | {r['quality']} | {r['bytes_per_frame']:.0f} | {r['psnr_yuv']:.2f} | "
                      f"{r['enc_s_per_frame']:.3f} | {r['dec_s_per_frame']:.3f} |", flush=True)
    anchor = names[0]
    print(f"\n### Summary (BD-rate vs {VARIANTS[anchor][0]}, akima; bytes/frame at matched PSNR-YUV)\n")
    print("| clip | codec | BD-rate | @32 dB | @35 dB | @38 dB | enc s/frame (mean) |")
    print("|---|---|---|---|---|---|---|")
    for clip, per in results.items():
        for name, rows in per.items():
            bd = 0.0 if name == anchor else bd_rate(per.get(anchor, []), rows) if anchor in per else float("nan")
            enc = float(np.mean([r["enc_s_per_frame"] for r in rows]))
            cells = " | ".join(f"{rate_at(rows, p):.0f}" for p in (32.0, 35.0, 38.0))
            print(f"| {clip} | {VARIANTS[name][0]} | {bd:+.1f}% | {cells} | {enc:.3f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
