#!/usr/bin/env python3
"""Time one step of the rate term as the fit runs it (quantized weights swapped in, backward, floats back,
the steps' gradient, rate estimate and its backward) on a D-NeRV network.

Usage (from the repository root): ``python benchmarks/rate_term_speed.py [PARAMS] [DEVICE]``
(default 64000 parameters, the people_qcif_48f network at 0.5 bpp, on the CPU).  The loss is a
stand-in (sum of squared weights + bits), so this measures the term's own cost, not a fit's.
"""
from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

from nervcodec.model import model_spec  # noqa: E402
from nervcodec.quant import RateTerm, RateTermConfig  # noqa: E402


def main() -> None:
    params = int(sys.argv[1]) if len(sys.argv) > 1 else 64000
    device = torch.device(sys.argv[2] if len(sys.argv) > 2 else "cpu")
    torch.manual_seed(0)
    spec = model_spec("dnerv")
    model = spec.cls(spec.plan(144, 176, 3, params, clip_len=8)).to(device)
    n = sum(p.numel() for p in model.parameters())
    rate = RateTerm(RateTermConfig(pixels=176 * 144 * 48, target_bits=4.0 * n), model)
    rate.begin(model)

    def step() -> None:
        rate.swap_in(model)
        (torch.cat([p.reshape(-1) for p in model.parameters()]).square().sum() * 1e-3).backward()
        (rate.swap_out(model) * 1e-6).backward()
        model.zero_grad()
        rate.log_step.grad = None

    for _ in range(5):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(50):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(f"{n} parameters in {len(rate.names)} tensors: {(time.perf_counter() - t) / 50 * 1e3:.2f} ms per step "
          f"on {device}")


if __name__ == "__main__":
    main()
