import numpy as np
import pytest
import torch

from nervcodec.entropy import encode_symbols
from nervcodec.quant import dequantize_tensor, f16_up, quantize_fixed, quantize_with_step


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (40, 12), (7,), (1, 1), (3, 1000)])
@pytest.mark.parametrize("bits", [4, 6, 8])
def test_fixed_error_bound_and_range(shape, bits):
    g = torch.Generator().manual_seed(sum(shape) + bits)
    w = torch.randn(*shape, generator=g) * torch.rand(shape[0], *([1] * (len(shape) - 1)), generator=g)
    q = quantize_fixed(w, bits, lambda s: len(encode_symbols(s, signed=True)))
    levels = 2 ** (bits - 1) - 1
    assert q.lo is None and -levels <= q.symbols.min() and q.symbols.max() <= levels
    d = dequantize_tensor(q)
    step = q.step.astype(np.float32)
    err = (w - d).abs().reshape(q.groups, -1).max(dim=1).values.numpy()
    assert np.all(err <= step / 2 * (1 + 1e-3) + 1e-7)


def test_fixed_uses_the_extreme_levels_and_keeps_zero():
    w = torch.linspace(-1, 1, 1001)[None].repeat(3, 1)
    q = quantize_fixed(w, 8)
    assert q.symbols.min() == -127 and q.symbols.max() == 127
    assert dequantize_tensor(q)[0, 500] == 0.0        # zero stays exactly zero


def test_zero_tensor_is_exact():
    w = torch.zeros(4, 5)
    assert torch.equal(dequantize_tensor(quantize_fixed(w, 8)), w)


def test_scale_mode_is_the_better_one_in_rate_distortion():
    """Per channel or per tensor: the one with the lower bits/weight + 0.5 log2(MSE) is kept."""
    from nervcodec.quant.quantize import _fixed_step
    size = lambda s: len(encode_symbols(s, signed=True))  # noqa: E731
    g = torch.Generator().manual_seed(5)
    for scales in ([100.0, 0.01], [1.0, 1.1, 0.9, 1.2], [1.0] * 3 + [50.0]):
        w = torch.cat([torch.randn(1, 400, generator=g) * c for c in scales])
        chosen = quantize_fixed(w, 6, size)

        def cost(qt):
            mse = float((dequantize_tensor(qt) - w).square().mean())
            return (8 * size(qt.symbols) + 16 * qt.groups) / w.numel() + 0.5 * np.log2(mse)
        both = [quantize_with_step(w, _fixed_step(w.numpy(), 6, pc)) for pc in (False, True)]
        assert cost(chosen) == min(cost(q) for q in both)
        assert chosen.groups in (1, len(scales))


def test_learned_step_symbols_are_rounded_quotients():
    w = torch.tensor([[0.30, -0.26, 0.0, 1.04]])
    step = f16_up(0.1)
    q = quantize_with_step(w, step)
    assert q.symbols.tolist() == [[3, -3, 0, 10]]
    assert torch.allclose(dequantize_tensor(q), torch.tensor([[0.3, -0.3, 0.0, 1.0]]), atol=1e-3)


def test_f16_up_never_rounds_down():
    x = np.geomspace(1e-7, 60000, 997)
    h = f16_up(x)
    assert h.dtype == np.float16 and np.all(h.astype(np.float64) >= x)
    assert np.all(np.nextafter(h, np.float16(0)).astype(np.float64) < x)


def test_step_too_small_is_refused():
    with pytest.raises(ValueError):
        quantize_with_step(torch.tensor([1e4]), np.float16(2 ** -24))
