"""Worker functions for tests/test_distributed.py: run in spawned processes (importable by name)."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.distributed as tdist

from conftest import tiny_fit_data, tiny_nerv


def _join(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'rendezvous')}", rank=rank,
                             world_size=world)


def _leave() -> None:
    """Every rank done before any tears the group down (gloo aborts a process whose peer is gone): the
    library's own way out, which the CLI takes after a successful command under torchrun.  Then the worker
    ends at once, its results on disk: the interpreter's teardown, which these tests do not test, now and
    then still aborted a worker after all of this ("terminate called without an active exception",
    SIGABRT: once in the full suite under load, 2026-12-04; 0 of 6 runs of the test alone)."""
    import sys

    from nervcodec.distributed import leave
    leave()
    assert not tdist.is_initialized()
    leave()     # alone again: nothing to leave
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def tiny_data():
    return tiny_fit_data(6)


def tiny_model():
    return tiny_nerv()


def sgd_step(model, data, idx, dist=None, lr: float = 0.5) -> None:
    """One plain-SGD step on the items ``idx`` (this rank's share when ``dist`` is given)."""
    from nervcodec.fit.fit import batch_loss
    out = model(data.t[idx], None)
    loss, _ = batch_loss(out, data, idx, "l2")
    model.zero_grad()
    loss.backward()
    if dist is not None:
        dist.average([p.grad for p in model.parameters()])
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad


def fit_worker(rank: int, world: int, folder: str) -> None:
    """A short Adam fit (and a rate-aware one), one plain-SGD step, and a batch that does not divide."""
    from nervcodec.errors import ConfigError
    from nervcodec.fit import FitConfig, fit
    from nervcodec.distributed import current
    from nervcodec.quant import RateTerm, RateTermConfig
    _join(rank, world, folder)
    dist = current()
    out = {}
    model = tiny_model()
    if rank == 1:   # a different start on purpose: the fit must begin from rank 0's parameters
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)
    fit(model, tiny_data(), FitConfig(epochs=4, batch=4, lr=5e-3), torch.device("cpu"))
    out["adam"] = [p.detach().numpy().tolist() for p in model.parameters()]
    model = tiny_model()
    rate = RateTerm(RateTermConfig(pixels=6 * 16 * 16, target_bits=4 * model.num_params()), model)
    res = fit(model, tiny_data(), FitConfig(epochs=6, batch=4, lr=5e-3), torch.device("cpu"), rate=rate)
    out["rate"] = [p.detach().numpy().tolist() for p in model.parameters()] + [rate.log_step.detach().tolist()]
    out["quant_psnr"] = res.quant_psnr
    model = tiny_model()
    sgd_step(model, tiny_data(), torch.arange(rank * 2, rank * 2 + 2), dist)
    out["sgd"] = [p.detach().numpy().tolist() for p in model.parameters()]
    try:
        fit(tiny_model(), tiny_data(), FitConfig(epochs=1, batch=3), torch.device("cpu"))
        out["odd_batch"] = "no error"
    except ConfigError as exc:
        out["odd_batch"] = str(exc)
    with open(os.path.join(folder, f"fit{rank}.json"), "w") as f:
        json.dump(out, f)
    _leave()


def encode_worker(rank: int, world: int, folder: str, inputs: list, output: str, cfg: dict) -> None:
    """encode() of a collection under a two-process group; each rank records what encode returned."""
    from nervcodec.codec import EncodeConfig, encode
    _join(rank, world, folder)
    res = encode(inputs, output, EncodeConfig(**cfg))
    with open(os.path.join(folder, f"encode{rank}.json"), "w") as f:
        json.dump(res.to_dict(), f, default=str)
    _leave()


def checksum(values) -> float:
    return float(sum(np.asarray(v, dtype=np.float64).sum() for v in values))


def decode_worker(rank: int, world: int, folder: str, nerv: str, out: str) -> None:
    """decode() of a collection file with its videos dealt over two processes."""
    from nervcodec.codec import decode
    _join(rank, world, folder)
    res = decode(nerv, out, device="cpu")
    with open(os.path.join(folder, f"decode{rank}.json"), "w") as f:
        json.dump(res.to_dict(), f)
    _leave()
