"""The rate-aware fit: learned steps, the rate estimate, lambda, rate control and the file it writes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nervcodec.container import pack_weights, read_file, unpack_weights
from nervcodec.quant import RateTerm, RateTermConfig, dequantize_tensor, laplace_bits, quantize_with_step


def _laplace_net(seed: int = 0) -> torch.nn.Module:
    """A small network whose weights look like fitted ones (Laplace-distributed, various spreads)."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3), torch.nn.Linear(100, 64), torch.nn.Conv2d(32, 8, 1))
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            u = torch.rand(p.shape, generator=g) - 0.5
            p.copy_(-0.05 * (i + 1) * torch.sign(u) * torch.log1p(-2 * u.abs()))
    return net


def _coded_bytes(net: torch.nn.Module, rate: RateTerm) -> bytes:
    steps = rate.steps()
    return pack_weights([(n, quantize_with_step(p, steps[n])) for n, p in net.named_parameters()])


def test_laplace_bits_match_the_discrete_entropy():
    beta = torch.tensor(1.7)
    k = torch.arange(-60, 61, dtype=torch.float64)
    cdf = lambda x: torch.where(x < 0, 0.5 * torch.exp(x / 1.7), 1 - 0.5 * torch.exp(-x / 1.7))  # noqa: E731
    exact = -torch.log2(cdf(k + 0.5) - cdf(k - 0.5))
    for j in (-7, -1, 0, 2, 30):
        assert float(laplace_bits(torch.tensor([float(j)]), beta)) == pytest.approx(float(exact[j + 60]), rel=1e-5)


def test_spreading_one_value_per_tensor_is_indexing_by_each_elements_tensor():
    from nervcodec.quant.qat import _Spread, spread
    sizes = [3, 0, 5, 1]
    v = torch.tensor([0.5, -2.0, 7.25, 1e-3], dtype=torch.float64, requires_grad=True)
    owner = torch.repeat_interleave(torch.arange(4), torch.tensor(sizes))
    assert torch.equal(spread(v.detach(), sizes), v.detach()[owner])
    assert spread(v.detach(), []).numel() == 0
    g = torch.arange(9, dtype=torch.float64)
    got, = torch.autograd.grad(_Spread.apply(v, sizes), v, g)      # each tensor's run of gradients, summed
    want, = torch.autograd.grad(v[owner], v, g)
    assert torch.equal(got, want) and got.tolist() == [3.0, 0.0, 25.0, 8.0]


@pytest.mark.parametrize("bits_per_param", [2.5, 4.0, 6.0])
def test_rate_estimate_is_within_3_percent_of_the_coded_size(bits_per_param):
    net = _laplace_net()
    n = sum(p.numel() for p in net.parameters())
    rate = RateTerm(RateTermConfig(pixels=10_000, target_bits=bits_per_param * n), net)
    rate.begin(net)
    coded = 8 * len(_coded_bytes(net, rate))
    assert rate.estimate_bits(net) == pytest.approx(coded, rel=0.03)
    assert coded == pytest.approx(bits_per_param * n, rel=0.15)     # the steps start near the target


def test_fitted_weights_are_the_stored_weights():
    """What the distortion sees during the fit is bit for bit what the decoder rebuilds."""
    net = _laplace_net(1)
    rate = RateTerm(RateTermConfig(pixels=10_000, target_bits=3.0 * 12_000), net)
    rate.begin(net)
    with torch.no_grad():
        seen = rate.quantized(net)
    template = net.state_dict()
    decoded = unpack_weights(_coded_bytes(net, rate), template)
    for name in template:
        assert torch.equal(seen[name], decoded[name]), name


def test_steps_learn_towards_the_budget():
    """Dual ascent on lambda: a fit-like loop of rate updates alone moves the estimate onto the target."""
    net = _laplace_net(2)
    n = sum(p.numel() for p in net.parameters())
    rate = RateTerm(RateTermConfig(pixels=10_000, target_bits=2.0 * n), net)
    rate.begin(net)
    with torch.no_grad():   # start off the target: steps 2x finer (a bit per weight too many)
        rate.log_step -= math.log(2.0)
    before = rate.estimate_bits(net)
    floats = {k: p.detach().clone() for k, p in net.named_parameters()}
    for _ in range(150):   # the fit's path: quantized weights swapped in, distortion, floats back, rate
        rate.swap_in(net)
        distortion = sum(((p - floats[k]) ** 2).mean() for k, p in net.named_parameters())
        distortion.backward()
        bits = rate.swap_out(net)
        rate.rate_loss(bits).backward()
        rate.after_step(bits)
        net.zero_grad()
    after = rate.estimate_bits(net)
    assert before > 1.4 * 2.0 * n
    assert after == pytest.approx(2.0 * n, rel=0.1)


def test_rate_term_state_round_trip():
    net = _laplace_net(3)
    a = RateTerm(RateTermConfig(pixels=1000, target_bits=30_000), net)
    a.begin(net)
    b = RateTerm(RateTermConfig(pixels=1000, target_bits=30_000), net)
    b.load_state_dict(a.state_dict(), net)
    assert b.active and torch.equal(a.log_step, b.log_step) and float(a.lam) == float(b.lam)
    assert {k: v.tobytes() for k, v in a.steps().items()} == {k: v.tobytes() for k, v in b.steps().items()}


def test_rate_term_needs_lambda_or_target():
    with pytest.raises(ValueError):
        RateTermConfig(pixels=10)
    with pytest.raises(ValueError):
        RateTermConfig(pixels=10, lam=float("nan"))


# --------------------------------------------------------------------------- whole encodes


def _encode(tmp_path, src, name, **kw):
    from nervcodec.codec import EncodeConfig, encode
    return encode([src], tmp_path / name, EncodeConfig(device="cpu", seed=0, **kw))


def test_larger_lambda_gives_a_strictly_smaller_file(tmp_path, clip_file):
    src = clip_file(width=32, height=24, frames=4)[0]
    sizes = [_encode(tmp_path, src, f"l{i}.nerv", model="nerv", params=4000, epochs=12, batch=1, lam=lam).bytes
             for i, lam in enumerate((1e-4, 1e-2, 1.0))]
    assert sizes[0] > sizes[1] > sizes[2]


def test_bpp_target_is_met_and_reported(tmp_path, clip_file):
    src, info, _ = clip_file(width=48, height=32, frames=6)
    res = _encode(tmp_path, src, "t.nerv", model="nerv", bpp=2.0, epochs=20)
    assert res.bpp == pytest.approx(2.0, rel=0.1)
    assert res.lam is not None and res.lam > 0
    assert res.rate_estimate_bytes == pytest.approx(res.weights_bytes, rel=0.1)
    assert res.bits_per_param == pytest.approx(res.weights_bytes * 8 / res.params)
    assert abs(res.fit_psnr_float - res.fit_psnr_quantized) < 1.0


def test_quant_bits_keeps_the_fixed_precision_path(tmp_path, clip_file):
    src = clip_file(width=32, height=24, frames=4)[0]
    res = _encode(tmp_path, src, "q.nerv", model="nerv", params=3000, epochs=3, quant_bits=6)
    nf = read_file(tmp_path / "q.nerv")
    assert nf.header.quant_bits == 6 and res.lam is None and res.rate_estimate_bytes is None
    learned = _encode(tmp_path, src, "l.nerv", model="nerv", params=3000, epochs=3)
    assert read_file(tmp_path / "l.nerv").header.quant_bits == 0 and learned.lam is not None


def test_lambda_and_quant_bits_exclude_each_other():
    from nervcodec.codec import EncodeConfig
    from nervcodec.errors import ConfigError
    with pytest.raises(ConfigError, match="lambda"):
        EncodeConfig(lam=0.01, quant_bits=8)
    with pytest.raises(ConfigError, match="lambda"):
        EncodeConfig(lam=-1.0)


def test_info_reports_bits_per_parameter_per_tensor(tmp_path, clip_file):
    from nervcodec.codec import inspect
    src = clip_file(width=32, height=24, frames=4)[0]
    res = _encode(tmp_path, src, "i.nerv", model="nerv", params=3000, epochs=3)
    fi = inspect(tmp_path / "i.nerv")
    assert fi.version == "2.0" and fi.params == res.params
    assert sum(t["bytes"] for t in fi.tensors) + 1 == fi.weights_bytes   # + the tensor count
    assert fi.bits_per_param == pytest.approx(res.bits_per_param)
    assert {t["method"] for t in fi.tensors} <= {"raw", "categorical", "sparse", "constant", "laplace", "gauss"}
    assert all(t["bits_per_param"] == pytest.approx(8 * t["bytes"] / t["params"]) for t in fi.tensors)


def test_quantized_tensor_dequantizes_exactly():
    w = torch.tensor([[0.5, -0.25, 0.125]])
    qt = quantize_with_step(w, np.float16(0.125))
    assert torch.equal(dequantize_tensor(qt), w)


def test_unquantizable_weights_are_a_fit_error_not_a_crash():
    from nervcodec.codec.coding import quantized_state
    from nervcodec.errors import FitDivergedError
    state = {"w": torch.tensor([1e6, -2.0])}
    with pytest.raises(FitDivergedError, match="cannot be quantized"):
        quantized_state(state, {"w": np.array([2 ** -24], np.float16)}, None)


def test_floating_tensors_without_a_learned_step_get_fixed_precision():
    """A buffer (no learned step) is still coded, at BUFFER_BITS of fixed precision, beside learned steps."""
    from nervcodec.codec.coding import BUFFER_BITS, quantized_state
    state = {"w": torch.tensor([0.3, -0.26]), "buf": torch.linspace(-1, 1, 9), "count": torch.tensor([3])}
    items = dict(quantized_state(state, {"w": np.array([0.1], np.float16)}, None))
    assert set(items) == {"w", "buf"}                       # integer tensors are not coded
    assert items["w"].symbols.tolist() == [3, -3]
    top = 2 ** (BUFFER_BITS - 1) - 1      # the float16 step, rounded up, may leave a few top levels unused
    assert 0.99 * top < np.abs(items["buf"].symbols).max() <= top


@pytest.mark.parametrize("channels_last", [False, True])
def test_swapped_weights_give_the_gradients_of_the_functional_path(channels_last):
    """The fit writes the quantized weights into the parameters (swap_in / swap_out) instead of running
    functional_call on them (``terms``): the same loss, and the same gradients for the weights, the steps and
    lambda's calibration, in either memory format."""
    from torch.func import functional_call

    def make():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(8, 3, 1))
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        rate = RateTerm(RateTermConfig(pixels=500, target_bits=900.0), net)
        rate.begin(net)
        return net, rate

    x = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    target = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(2))

    a, ra = make()
    torch.manual_seed(5)                      # the rate's noise
    weights, bits_a = ra.terms(a)
    distortion_a = ((functional_call(a, weights, (x,)) - target) ** 2).mean()
    g_d, = torch.autograd.grad(distortion_a, ra.log_step, retain_graph=True)   # lambda's calibration, by hand
    g_r, = torch.autograd.grad(bits_a / 500, ra.log_step, retain_graph=True)
    lam_a = -(g_d * g_r).sum() / (g_r * g_r).sum()
    loss_a = distortion_a + lam_a.detach() * bits_a / 500
    loss_a.backward()

    b, rb = make()
    before = [p.detach().clone() for p in b.parameters()]
    rb.swap_in(b)
    for p, w in zip(b.parameters(), weights.values()):
        assert torch.equal(p.detach(), w.detach())             # exactly the weights the file stores
    distortion = ((b(x) - target) ** 2).mean()
    distortion.backward()
    torch.manual_seed(5)
    bits_b = rb.swap_out(b)
    assert all(torch.equal(p, q) for p, q in zip(b.parameters(), before))   # the float weights are back
    rate_loss = rb.rate_loss(bits_b)
    rate_loss.backward()

    assert float(bits_a.detach()) == pytest.approx(float(bits_b.detach()), rel=1e-6)
    assert float(lam_a) == pytest.approx(float(rb.lam), rel=1e-5)           # the same calibration
    assert float(loss_a.detach()) == pytest.approx(float((distortion + rate_loss).detach()), rel=1e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(ra.log_step.grad, rb.log_step.grad, rtol=1e-4, atol=1e-9)
