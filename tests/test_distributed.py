"""Data-parallel fitting with two CPU processes (gloo, file:// rendezvous, one thread each)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from nervcodec.codec import EncodeConfig, decode, encode
from nervcodec.distributed import Dist, map_over_ranks, pad_to_batches, shard
from nervcodec.io import write_video
from nervcodec.metrics import compare_videos

import dist_workers
from conftest import make_moving_clip

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def _spawn(fn, *args, nprocs: int = 2) -> None:
    mp.start_processes(fn, args=(nprocs, *args), nprocs=nprocs, start_method="spawn", join=True)


def test_shards_of_an_epoch_are_disjoint_and_cover_every_item():
    m, batch, world = 7, 4, 2
    perm = torch.randperm(m, generator=torch.Generator().manual_seed(3))
    steps = -(-m // batch)
    padded = pad_to_batches(perm, steps, batch)
    assert padded.numel() == steps * batch and torch.equal(padded[:m], perm)
    seen = []
    for s in range(steps):
        parts = [shard(padded, s, batch, Dist(r, world)) for r in range(world)]
        assert all(p.numel() == batch // world for p in parts)
        flat = torch.cat(parts).tolist()
        assert flat == padded[s * batch:(s + 1) * batch].tolist()           # the global batch, split in order
        seen += flat
    assert set(seen) == set(range(m)) and len(seen) - len(set(seen)) == steps * batch - m   # only the padding repeats
    assert torch.equal(shard(perm, 1, 4, None), perm[4:8])
    assert map_over_ranks(lambda x: x * 2, [1, 2, 3], None) == [2, 4, 6]


def test_two_ranks_fit_one_model_and_a_split_sgd_step_equals_the_whole_batch(tmp_path):
    _spawn(dist_workers.fit_worker, str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"fit{r}.json").read_text()) for r in range(2))
    for key in ("adam", "rate", "sgd"):      # bit-identical parameters on both ranks after several steps
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(r0[key], r1[key])), key
    assert np.isfinite(r0["quant_psnr"]) and r0["quant_psnr"] == r1["quant_psnr"]
    # one process, the whole batch of 4 = two ranks with 2 each: plain SGD shows a sum-vs-mean slip
    model = dist_workers.tiny_model()
    dist_workers.sgd_step(model, dist_workers.tiny_data(), torch.arange(4))
    for p, q in zip(model.parameters(), r0["sgd"]):
        assert np.allclose(p.detach().numpy(), np.asarray(q), atol=1e-6, rtol=0)
    moved = dist_workers.tiny_model()
    assert not all(np.allclose(p.detach().numpy(), np.asarray(q), atol=1e-6) for p, q in
                   zip(moved.parameters(), r0["sgd"]))                     # the step did move the weights
    assert "multiple of 2" in r0["odd_batch"] and r0["odd_batch"] == r1["odd_batch"]


def test_a_two_process_encode_writes_one_file_that_decodes_as_reported(tmp_path):
    inputs = []
    for k in range(4):
        info, fr = make_moving_clip(width=32, height=24, frames=5, speed=1.0 + 0.5 * k, name=f"v{k}")
        inputs.append(str(tmp_path / f"v{k}.y4m"))
        write_video(inputs[-1], info, fr)
    cfg = dict(model="dnerv", params=7000, keyframe_quality=40, epochs=6, batch=4, device="cpu", clip_len=4,
               quant_bits=8)
    two = str(tmp_path / "two.nerv")
    _spawn(dist_workers.encode_worker, str(tmp_path), inputs, two, {**cfg, "verify": True})
    r0, r1 = (json.loads((tmp_path / f"encode{r}.json").read_text()) for r in range(2))
    assert r0["verify"]["frames"] == 20 and abs(r0["verify"]["psnr_yuv"] - r0["psnr"]) < 1e-6   # rank 0 decoded it all
    assert r0 == r1 and r0["bytes"] == (tmp_path / "two.nerv").stat().st_size      # every rank: rank 0's result
    one = encode(inputs, tmp_path / "one.nerv", EncodeConfig(**cfg))
    decode(two, tmp_path / "dec", device="cpu")
    psnr = np.mean([compare_videos(src, tmp_path / "dec" / f"v{k}.y4m").psnr_yuv for k, src in enumerate(inputs)])
    assert abs(psnr - r0["psnr"]) < 0.01                                     # the PSNR encode reported decodes
    assert abs(r0["psnr"] - one.psnr) < 0.3, (r0["psnr"], one.psnr)         # two ranks ~ one process
    assert not list(tmp_path.glob("*.tmp*"))


def test_torchrun_cli_speaks_once_and_every_rank_fails_the_same_way(tmp_path):
    import os
    import subprocess
    import sys
    info, fr = make_moving_clip(width=32, height=24, frames=5)
    src = tmp_path / "c.y4m"
    write_video(src, info, fr)
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
            "nervcodec", "encode", str(src), str(tmp_path / "o.nerv"), "--model", "nerv", "--params", "2500",
            "--epochs", "2", "--device", "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ok = subprocess.run(base + ["--batch", "2", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["frames"] == 5                             # one JSON document: rank 0 alone
    bad = subprocess.run(base + ["--batch", "3", "--force"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0
    assert bad.stderr.count("nervcodec: error: --batch 3 does not divide over 2 processes") == 1
