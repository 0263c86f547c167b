import numpy as np
import pytest
import torch

from nervcodec.quant import dequantize_tensor, quantize_tensor


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (40, 12), (7,), (1, 1), (3, 1000)])
@pytest.mark.parametrize("bits", [4, 6, 8])
def test_error_bound(shape, bits):
    g = torch.Generator().manual_seed(sum(shape) + bits)
    w = torch.randn(*shape, generator=g) * torch.rand(shape[0], *([1] * (len(shape) - 1)), generator=g)
    q = quantize_tensor(w, bits)
    assert q.symbols.min() >= 0 and q.symbols.max() <= 2 ** bits - 1
    d = dequantize_tensor(q)
    step = q.step.astype(np.float32)
    err = (w - d).abs().reshape(shape[0] if len(shape) > 1 else 1, -1).max(dim=1).values.numpy()
    assert np.all(err <= step / 2 * (1 + 1e-3) + 1e-7)


def test_uses_all_levels_and_not_more():
    # 2^b - 1 steps span [min, max]: both ends are hit and no symbol exceeds b bits
    w = torch.linspace(-1, 1, 1000)[None].repeat(3, 1)
    q = quantize_tensor(w, 8)
    assert q.symbols.min() == 0 and q.symbols.max() == 255


def test_constant_channel_is_exact():
    w = torch.full((4, 5), 0.25)
    assert torch.equal(dequantize_tensor(quantize_tensor(w)), w)


def test_per_channel_scales():
    w = torch.stack([torch.randn(50) * 100, torch.randn(50) * 0.01])
    q = quantize_tensor(w)
    assert q.lo.shape == (2,) and q.step[0] > 100 * q.step[1]
