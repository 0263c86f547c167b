"""Shared fixtures: tiny synthetic clips made in the test (no external data)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from nervcodec.io import write_video
from nervcodec.io.video import Frames, VideoInfo, pixel_format

torch.set_num_threads(min(2, torch.get_num_threads()))


def make_clip(width: int = 32, height: int = 24, frames: int = 6, pix_fmt: str = "yuv420p", seed: int = 0,
              name: str = "clip") -> tuple[VideoInfo, Frames]:
    """A smooth moving pattern plus a little noise: learnable, but not constant."""
    fmt = pixel_format(pix_fmt)
    rng = np.random.default_rng(seed)
    planes = []
    for k, (h, w) in enumerate(fmt.plane_shapes(width, height)):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        t = np.arange(frames, dtype=np.float64)[:, None, None]
        base = 0.5 + 0.3 * np.sin(0.35 * xx / max(w / width, 1e-9) / 1.5 + 0.25 * t + k) * \
            np.cos(0.3 * yy / max(h / height, 1e-9) / 1.5 - 0.15 * t)
        base = base + 0.02 * rng.standard_normal((frames, h, w))
        planes.append(np.clip(np.rint(base * fmt.max_value), 0, fmt.max_value).astype(fmt.dtype))
    info = VideoInfo(width, height, fmt, Fraction(30000, 1001), frames, name=name)
    return info, Frames(tuple(planes), fmt)


@pytest.fixture
def clip_file(tmp_path: Path):
    """Factory: write a synthetic clip as y4m and return (path, info, frames)."""
    def _make(name: str = "clip", **kw):
        info, fr = make_clip(name=name, **kw)
        path = tmp_path / f"{name}.y4m"
        write_video(path, info, fr)
        return path, info, fr
    return _make


def make_moving_clip(width: int = 48, height: int = 32, frames: int = 17, speed: float = 1.5,
                     name: str = "moving") -> tuple[VideoInfo, Frames]:
    """A sinusoidal pattern translating by ``speed`` pixels per frame (yuv420p, no noise).

    A keyframe cross-fade ghosts on it; a model that learns the motion does much better.
    """
    fmt = pixel_format("yuv420p")
    planes = []
    for k, (ph, pw) in enumerate(fmt.plane_shapes(width, height)):
        yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float64)
        t = np.arange(frames, dtype=np.float64)[:, None, None]
        x = xx * (width / pw) - speed * t
        y = yy * (height / ph) - 0.5 * speed * t
        base = 0.5 + 0.35 * np.sin(2 * np.pi * x / 16 + k) * np.cos(2 * np.pi * y / 20)
        planes.append(np.clip(np.rint(base * 255), 0, 255).astype(np.uint8))
    return VideoInfo(width, height, fmt, Fraction(25), frames, name=name), Frames(tuple(planes), fmt)


def write_moving_clip(path: Path, **kw) -> Path:
    """:func:`make_moving_clip` (``kw``: its arguments) written to ``path``, which is returned."""
    info, frames = make_moving_clip(**kw)
    write_video(path, info, frames)
    return path


def tiny_fit_data(n: int = 4, h: int = 16, w: int = 16):
    """Random 4:2:0 training items of one frame each (for the fitting loop alone)."""
    from nervcodec.fit import FitData
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(n, 1, h, w, generator=g) * 255).to(torch.uint8)
    c = (torch.rand(n, 1, 2, h // 2, w // 2, generator=g) * 255).to(torch.uint8)
    return FitData(t=torch.arange(n, dtype=torch.float32)[:, None] / n, y=y, c=c, mask=torch.ones(n, 1),
                   keyframes=None, max_value=255, chroma_shift=(1, 1))


def tiny_nerv():
    """A seeded NeRV of about 3000 parameters for 16x16 frames."""
    from nervcodec.model.nerv import NeRV, plan_nerv
    torch.manual_seed(0)
    return NeRV(plan_nerv(16, 16, 3, 3000))


def interrupt_at(monkeypatch, step: int) -> None:
    """Send SIGINT to this process during the loss of step ``step`` (1-based), as Ctrl-C would."""
    import importlib
    import os
    import signal
    fit_module = importlib.import_module("nervcodec.fit.fit")   # the module (the package exports the function)
    real = fit_module.batch_loss
    calls = {"n": 0}

    def loss(*a, **kw):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    monkeypatch.setattr(fit_module, "batch_loss", loss)


def decoded_psnr_yuv(nerv: Path, out: Path, source: Frames, **decode_kw) -> tuple:
    """Decode ``nerv`` to ``out``: (frames decoded, PSNR-YUV of the decoded file against ``source``)."""
    from nervcodec.codec import decode
    from nervcodec.codec.quality import FrameScores
    from nervcodec.io import read_video
    decode(nerv, out, device="cpu", force=True, **decode_kw)
    _, got = read_video(out)
    scores = FrameScores(got.pix_fmt)
    for f in range(got.num_frames):
        scores.add([p[f] for p in source.planes], [p[f] for p in got.planes])
    return got.num_frames, scores.psnr_yuv


def assert_ranges_equal_the_full_decode(nerv: Path, workdir: Path, ranges: dict, **decode_kw) -> None:
    """Decoding each ``--frames`` spec of ``ranges`` ({spec: (a, b)}) gives frames a..b-1 of the full decode."""
    from nervcodec.codec import decode
    from nervcodec.io import read_video
    decode(nerv, workdir / "full.y4m", device="cpu", force=True)
    _, full = read_video(workdir / "full.y4m")
    for spec, (a, b) in ranges.items():
        part = workdir / f"p{a}.y4m"
        decode(nerv, part, frames=spec, device="cpu", force=True, **decode_kw)
        _, got = read_video(part)
        for pf, pg in zip(full.planes, got.planes):
            assert np.array_equal(pf[a:b], pg), spec


def load_benchmark(name: str):
    """The script ``benchmarks/NAME.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encode_moving(workdir: Path, name: str, **config) -> tuple:
    """The 32x24, 11-frame moving clip written to ``workdir`` and encoded with ``config``:
    (workdir, source path, .nerv path, encode result, source frames)."""
    from nervcodec.codec import EncodeConfig, encode
    info, frames = make_moving_clip(width=32, height=24, frames=11)
    src = workdir / "moving.y4m"
    write_video(src, info, frames)
    out = workdir / f"{name}.nerv"
    return workdir, src, out, encode([src], out, EncodeConfig(**config)), frames


def decodes_with_threads_and_batches(nerv: Path, workdir: Path, runs) -> list:
    """The decoded file's bytes for each (threads, batch) of ``runs`` (torch's thread count restored)."""
    from nervcodec.codec import decode
    before = torch.get_num_threads()
    outputs = []
    try:
        for threads, batch in runs:
            torch.set_num_threads(threads)
            path = workdir / f"t{threads}b{batch}.y4m"
            decode(nerv, path, device="cpu", batch=batch, force=True)
            outputs.append(path.read_bytes())
    finally:
        torch.set_num_threads(before)
    return outputs
