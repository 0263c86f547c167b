"""Quality floors: a model that fits badly (or outputs garbage deterministically) fails these.

Every other codec test checks exactness (round trips, determinism, encoder PSNR =
decoder PSNR), which a broken model passes.  These check that fitting works:

* NeRV on a smooth moving pattern reaches a stated PSNR in a few seconds of CPU
  fitting (a model that outputs a constant frame gets about 13 dB here);
* D-NeRV beats the cross-fade of its own decoded keyframes by a margin on a
  translating pattern (the cross-fade is where D-NeRV starts; a model whose flows
  or residual head do not learn stays there).

The figures were measured on this project's 2-core CPU (torch 2.x): NeRV 25.6 dB,
D-NeRV 25.8 dB against a 21.5 dB cross-fade; the floors leave about 2 dB of room.
"""
from __future__ import annotations

import numpy as np
import pytest

from nervcodec.codec.coding import code
from nervcodec.codec.config import EncodeConfig
from nervcodec.codec.fitting import fit_model
from nervcodec.codec.plan import plan
from nervcodec.codec.quality import FrameScores
from nervcodec.io import write_video

from conftest import make_moving_clip

NERV_FLOOR_DB = 23.0
DNERV_MARGIN_DB = 2.5


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    path = tmp_path_factory.mktemp("floor") / "moving.y4m"
    info, frames = make_moving_clip()
    write_video(path, info, frames)
    return path, info, frames


def _crossfade_psnr(p, info, frames) -> float:
    """PSNR-YUV of the flow-free cross-fade of the decoded keyframes (keyframes shown as decoded)."""
    scores = FrameScores(info.pix_fmt)
    d = p.layout.clip_len
    for it in p.layout.items(p.infos):
        k0, k1 = it.keyframes
        a, b = p.keyframes.planes(0, k0), p.keyframes.planes(0, k1)
        for j, (f, ok) in enumerate(zip(it.frames, it.valid)):
            if not ok:
                continue
            if p.layout.is_keyframe(info, 0, f):
                guess = p.keyframes.planes(0, f)
            else:
                tau = j / d
                guess = [np.rint((1 - tau) * x.astype(np.float64) + tau * y.astype(np.float64)).astype(np.uint8)
                         for x, y in zip(a, b)]
            scores.add([pl[f] for pl in frames.planes], guess)
    return scores.psnr_yuv


def test_nerv_reaches_its_floor_on_a_moving_pattern(tmp_path, moving):
    src, _, _ = moving
    p = plan([src], tmp_path / "n.nerv", EncodeConfig(model="nerv", params=3000, epochs=100, device="cpu"))
    coded = code(p, fit_model(p))
    assert coded.psnr >= NERV_FLOOR_DB, coded.psnr


def test_dnerv_beats_the_keyframe_crossfade(tmp_path, moving):
    src, info, frames = moving
    p = plan([src], tmp_path / "d.nerv", EncodeConfig(model="dnerv", params=6000, epochs=30, device="cpu"))
    crossfade = _crossfade_psnr(p, info, frames)
    coded = code(p, fit_model(p))
    assert coded.psnr >= crossfade + DNERV_MARGIN_DB, (coded.psnr, crossfade)
