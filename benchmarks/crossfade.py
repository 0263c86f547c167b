#!/usr/bin/env python3
"""Where a keyframe-conditioned model starts: the cross-fade of its coded keyframes.

Usage (from the repository root)::

    python benchmarks/crossfade.py CLIP --bpp 0.024 --clip-len 8 --clip-len 4 [--no-cuts] [--json out.json]

For each clip length D (and with and without the scene cuts the encoder finds, unless ``--no-cuts``),
the clip is laid out exactly as ``encode`` lays it out for D-NeRV (``plan_layout``), the keyframes are
coded with the default keyframe codec (vvc-ra since 2026-12-03; VVC intra before) at the largest quality whose bytes fit ``--bpp``
(the keyframes' share of a rate: 0.6 x 0.04 = 0.024 for a 0.04 bpp encode), and every other frame is
the linear cross-fade of its clip's two decoded keyframes at tau = j / D (rounded to samples; scored by the planner's `starting_psnr`), which is what D-NeRV and
latent-grid-kf output before they have learned anything. It prints the keyframes' count, bytes and
PSNR-RGB, and the cross-fade's mean PSNR-RGB over all frames (rgb24 from the library's conversion).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, ROOT)

from nervcodec.codec.cliplen import starting_psnr  # noqa: E402
from nervcodec.codec.layout import plan_layout  # noqa: E402
from nervcodec.codec.scenecut import find_cuts  # noqa: E402
from nervcodec.io import read_video  # noqa: E402
from nervcodec.io.video import Frames  # noqa: E402
from nervcodec.keyframes import default_keyframe_codec, yuv_to_rgb  # noqa: E402
from nervcodec.keyframes.base import choose_quality, packed_size  # noqa: E402


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 10 * np.log10(1.0 / np.maximum(((a - b) ** 2).mean(axis=(1, 2, 3)), 1e-12))


def crossfade(path: str, bpp: float, clip_lens: List[int], cuts_too: bool = True) -> List[Dict[str, object]]:
    info, frames = read_video(path)
    rgb = yuv_to_rgb(frames)
    cuts = find_cuts(frames, info)
    codec = default_keyframe_codec(info.pix_fmt)
    budget = int(bpp * info.num_frames * info.width * info.height / 8)
    rows = []
    for d in clip_lens:
        for use in ([False, True] if cuts_too and cuts else [False]):
            lay = plan_layout([info], d, "video", True, substitute=True, cuts=[cuts] if use else ())
            keys = lay.keyframe_indices(info, 0)
            sub = Frames(tuple(p[np.asarray(keys)] for p in frames.planes), frames.pix_fmt)
            quality, blobs = choose_quality(codec, sub, budget)
            dec = codec.decode(blobs, frames.pix_fmt, info.width, info.height, codec.params(quality))
            native = {(0, f): [p[i] for p in dec.planes] for i, f in enumerate(keys)}
            size = packed_size(blobs)
            rows.append({"clip": os.path.basename(path), "clip_len": d, "cuts": list(cuts) if use else [],
                         "keyframes": len(keys), "quality": quality, "keyframe_bytes": size,
                         "keyframe_bpp": size * 8 / (info.num_frames * info.width * info.height),
                         "keyframe_psnr_rgb": float(_psnr(rgb[keys], yuv_to_rgb(dec)).mean()),
                         "crossfade_psnr_rgb": starting_psnr([info], [frames], lay, native)})
            r = rows[-1]
            print(f"{r['clip']}: D={d} {'with' if use else 'without'} cuts: {r['keyframes']} keyframes in "
                  f"{size} B ({r['keyframe_bpp']:.4f} bpp), keyframes {r['keyframe_psnr_rgb']:.2f} dB, "
                  f"cross-fade {r['crossfade_psnr_rgb']:.2f} dB PSNR-RGB", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--bpp", type=float, required=True, help="keyframe bytes as bits per pixel of the clip")
    ap.add_argument("--clip-len", type=int, action="append", help="keyframe interval D (repeatable; default 8)")
    ap.add_argument("--no-cuts", action="store_true", help="only the layout without scene cuts")
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args()
    rows = crossfade(a.clip, a.bpp, a.clip_len or [8], cuts_too=not a.no_cuts)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
