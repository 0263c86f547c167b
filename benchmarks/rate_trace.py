#!/usr/bin/env python3
"""Watch the rate-aware part of a fit: one JSON line every N of its steps, then the encode's result.

    python benchmarks/rate_trace.py CLIP OUT.nerv [--model latent-grid-kf] [--bpp 0.1] [--seed 0]
                                   [--steps N] [--every 50] [--maps] [--threads 1] [--device cpu]

Each line holds the rate step (counted from the start of the rate term), log lambda, the step's estimate
of the weights' bits (noisy symbols; a sampled step's stands for every row), the coder's size over the
estimate as last measured (``RateTerm`` re-measures it every ``CODED_CHECK_STEPS`` steps when the model
steers by the coded size; 1 otherwise), the target, the learned steps' min / median / max and the fit's
PSNR over the last N steps (the training loss's weighted MSE, on noisy or rounded weights as the fit
runs them).  With ``--maps``, each latent map's step and share of non-zero symbols as well.

This is how docs/benchmarks.md's traces of the grids' rate phase were taken.  The tracer only reads: it
wraps ``RateTerm.after_step`` and the fit's ``batch_loss`` and draws no random number, so the file is
byte-identical to ``nervcodec encode`` with the same settings (a test checks).  It keeps each step's loss
on the device and reads it only when it prints.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections import deque
from typing import Callable, Dict, Iterator

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nervcodec.codec import EncodeConfig, encode  # noqa: E402
from nervcodec.metrics.psnr import mse_to_psnr  # noqa: E402
from nervcodec.quant import qat  # noqa: E402

# the module, not the package's ``fit`` function of the same name
fit_module = importlib.import_module("nervcodec.fit.fit")


def _maps(steps: Dict[str, np.ndarray], model: torch.nn.Module) -> Dict[str, dict]:
    """Per latent map: its step (``steps``: :meth:`RateTerm.steps`) and the share of its rounded symbols that
    are not zero."""
    names = set(getattr(model, "latent_names", tuple)())
    out = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in names:
                s = float(steps[name][0])
                out[name] = {"step": round(s, 6),
                             "nonzero": round(float((torch.round(p / s) != 0).float().mean()), 6)}
    return out


@contextlib.contextmanager
def tracing(every: int, emit: Callable[[dict], None], maps: bool = False) -> Iterator[None]:
    """While inside, every ``every``-th rate step (and the first) is passed to ``emit`` as a dict."""
    state = {"step": 0}
    mses: deque = deque(maxlen=every)     # the last steps' losses, on the device
    after_step, batch_loss = qat.RateTerm.after_step, fit_module.batch_loss

    def traced_loss(*args, **kwargs):
        loss, mse = batch_loss(*args, **kwargs)
        mses.append(mse.detach())
        return loss, mse

    def traced_step(self, bits, model=None):
        after_step(self, bits, model)
        state["step"] += 1
        if (state["step"] - 1) % every:
            return
        stored = self.steps()
        steps = torch.from_numpy(np.concatenate(list(stored.values())).astype(np.float32))
        line = {"rate_step": state["step"], "log_lambda": round(float(self.log_lam), 4),
                "estimate_bits": round(float(bits.detach())), "coded_ratio": round(self._ratio, 4),
                "target_bits": None if self.cfg.target_bits is None else round(self.cfg.target_bits),
                "steps": [round(float(steps.min()), 6), round(float(steps.median()), 6),
                          round(float(steps.max()), 6)],
                "fit_psnr": round(float(mse_to_psnr(float(torch.stack(list(mses)).float().mean()), 1.0)), 3)}
        if maps and model is not None:
            line["maps"] = _maps(stored, model)
        emit(line)

    qat.RateTerm.after_step, fit_module.batch_loss = traced_step, traced_loss
    try:
        yield
    finally:
        qat.RateTerm.after_step, fit_module.batch_loss = after_step, batch_loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("out")
    ap.add_argument("--model", default="latent-grid-kf")
    ap.add_argument("--bpp", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    ap.add_argument("--every", type=int, default=50, help="rate steps between lines")
    ap.add_argument("--maps", action="store_true", help="each latent map's step and non-zero share")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error("--every must be at least 1")
    torch.set_num_threads(args.threads)
    cfg = EncodeConfig(model=args.model, bpp=args.bpp, seed=args.seed, steps=args.steps, device=args.device,
                       force=True)
    with tracing(args.every, lambda line: print(json.dumps(line), flush=True), args.maps):
        result = encode([args.clip], args.out, cfg)
    print(json.dumps({"bytes": os.path.getsize(args.out), "bpp": result.bpp, "psnr": result.psnr}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
