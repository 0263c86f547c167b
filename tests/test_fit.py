"""The fitting loop: schedule, progress, determinism, and the torch.compile fallback."""
import copy
import importlib
import math

import pytest
import torch

from nervcodec.fit import FitConfig, fit
from nervcodec.fit.fit import lr_factor

from conftest import tiny_fit_data, tiny_nerv


def _data(n=4, h=16, w=16):
    return tiny_fit_data(n, h, w)


def _model():
    return tiny_nerv()


def test_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 0.2) == pytest.approx(0.1)
    assert lr_factor(20, 100, 0.2) == pytest.approx(1.0)
    assert lr_factor(60, 100, 0.2) == pytest.approx(0.5)
    assert lr_factor(100, 100, 0.2) == pytest.approx(0.0, abs=1e-12)


def test_fit_reduces_loss_and_reports_progress():
    seen = []
    m = _model()
    res = fit(m, _data(), FitConfig(epochs=30, batch=2, lr=5e-3), torch.device("cpu"),
              progress=lambda s, tot, p: seen.append((s, tot, p)), refresh_seconds=0.0)
    assert res.steps == 60 and seen[-1][0] == 60 and seen[-1][1] == 60
    assert seen[-1][2] > seen[0][2]  # PSNR went up
    assert math.isfinite(res.final_psnr)


def test_fit_is_deterministic_on_cpu():
    a, b = _model(), _model()
    for m in (a, b):
        fit(m, _data(), FitConfig(epochs=3, batch=2), torch.device("cpu"))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken_compile(model, *a, **k):
        def fn(*args):
            raise RuntimeError("no compiler here")
        return fn
    monkeypatch.setattr(torch, "compile", broken_compile)
    eager, fallback = _model(), _model()
    fit(eager, _data(), FitConfig(epochs=2, batch=2, compile=False), torch.device("cpu"))
    fit(fallback, _data(), FitConfig(epochs=2, batch=2, compile=True), torch.device("cpu"))
    for k, v in eager.state_dict().items():
        assert torch.equal(v, fallback.state_dict()[k]), k


def test_masked_frames_do_not_count():
    d = _data()
    d.mask[1:] = 0
    m = _model()
    fit(m, d, FitConfig(epochs=1, batch=4, lr=0.0), torch.device("cpu"))  # lr 0: weights unchanged
    d2 = _data()
    from nervcodec.fit.fit import batch_loss
    with torch.no_grad():
        out = m(d.t, None)
    _, mse_masked = batch_loss(out, d, torch.arange(4), "l2")
    _, mse_first = batch_loss(out[:1], d2, torch.arange(1), "l2")
    assert float(mse_masked) == pytest.approx(float(mse_first), rel=1e-5)


def test_items_without_a_frame_in_the_loss_do_not_count_in_the_reported_psnr():
    """An item whose frames are all substituted keyframes has an all-zero loss mask: its step runs (12 steps
    here, 3 of them on it) but its mse of 0 is not a PSNR of 120 dB, and it is left out of the
    progress and of the final PSNR, which are those of the steps that had frames in the loss."""
    d = _data()
    d.mask[3] = 0
    seen, steps = [], []
    m = _model()
    fitmod = importlib.import_module("nervcodec.fit.fit")
    real = fitmod.batch_loss

    def spy(out, data, idx, loss):
        res = real(out, data, idx, loss)
        steps.append((float(data.mask.sum()) > 0, float(res[1].detach())))
        return res
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fitmod, "batch_loss", spy)
        res = fit(m, d, FitConfig(epochs=3, batch=1, lr=1e-3), torch.device("cpu"),
                  progress=lambda s, tot, p: seen.append((s, p)), refresh_seconds=0.0)
    assert len(steps) == 12 and sum(not has for has, _ in steps) == 3
    assert [s for s, _ in seen] == [i + 1 for i, (has, _) in enumerate(steps) if has] + \
        ([12] if not steps[-1][0] else [])
    assert all(p < 100 for _, p in seen)                 # never the 120 dB of a zero mse
    last = [mse for has, mse in steps[8:] if has]        # the last epoch's steps with frames in the loss
    assert res.final_psnr == pytest.approx(10 * math.log10(1 / (sum(last) / len(last))), abs=1e-5)


def test_a_resumed_fit_reports_the_final_psnr_of_the_uninterrupted_one():
    """The count of steps with frames in the loss travels in the checkpoint (resumed mid-epoch)."""
    d = _data()
    d.mask[3] = 0
    cfg = FitConfig(epochs=2, batch=1, lr=1e-3)
    saved = {}

    def keep(get_state, stopping):
        if not saved and get_state()["step"] == 7:
            saved.update(copy.deepcopy(get_state()))     # as written to disk: not the live tensors
    whole = fit(_model(), d, cfg, torch.device("cpu"), checkpoint=keep)
    resumed = fit(_model(), d, cfg, torch.device("cpu"), resume=saved)
    assert saved["index"] == 3 and saved["epoch_counted"] == 2       # one of its three steps had no frame
    assert resumed.final_psnr == whole.final_psnr and math.isfinite(whole.final_psnr)


def test_a_last_epoch_without_frames_in_the_loss_reports_the_last_measured_psnr():
    """A step budget can end one step into an epoch, on an item of keyframes alone: the final PSNR is then
    the one the progress last measured, not NaN (which would silence the worse-than-its-start check)."""
    empty_last = 0
    for seed in range(8):
        d = tiny_fit_data(2, 16, 16)
        d.mask[1] = 0
        seen = []
        res = fit(_model(), d, FitConfig(steps=3, batch=1, lr=1e-3, seed=seed), torch.device("cpu"),
                  progress=lambda s, tot, p: seen.append((s, p)), refresh_seconds=0.0)
        assert math.isfinite(res.final_psnr) and res.final_psnr == seen[-1][1] and seen[-1][0] == 3
        empty_last += seen[-1][1] == seen[-2][1]      # step 3 measured nothing new
    assert 0 < empty_last < 8                         # both cases occurred
