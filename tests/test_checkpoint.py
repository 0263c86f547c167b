"""--checkpoint / --resume: a fit interrupted and resumed on the CPU writes the same file, byte for byte.

The interruption is a real SIGINT sent to this process at a chosen step (from inside
the loss computation), so it exercises the same path as Ctrl-C: the step finishes,
the state is saved, the fit stops, the encode raises InterruptedError_ and writes
nothing.  Resuming must then reproduce the uninterrupted run exactly.
"""
from __future__ import annotations

import importlib
import os

import pytest
import torch
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, encode
from nervcodec.errors import ConfigError, FormatError, InterruptedError_

from conftest import interrupt_at

fit_module = importlib.import_module("nervcodec.fit.fit")   # the module (the package exports the function)


def _cfg(**kw) -> EncodeConfig:
    base = dict(model="nerv", params=2000, epochs=5, batch=1, device="cpu", seed=3, force=True)
    base.update(kw)
    return EncodeConfig(**base)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    from nervcodec.io import write_video

    from conftest import make_clip
    path = tmp_path_factory.mktemp("ckpt-src") / "clip.y4m"
    write_video(path, *make_clip(width=12, height=8, frames=3))
    return path


@pytest.fixture(scope="module")
def reference(src, tmp_path_factory) -> bytes:
    """The uninterrupted encode every resumed one must reproduce."""
    ref = tmp_path_factory.mktemp("ckpt-ref") / "ref.nerv"
    encode([src], ref, _cfg())
    return ref.read_bytes()


@pytest.mark.parametrize("stop_step", [5, 6, 13])   # mid-epoch, at the end of an epoch, in the rate-aware phase
def test_resumed_fit_is_bit_identical(tmp_path, src, reference, monkeypatch, stop_step):
    out, ck = tmp_path / "out.nerv", tmp_path / "fit.ckpt"
    with monkeypatch.context() as m:
        interrupt_at(m, stop_step)
        with pytest.raises(InterruptedError_, match="--resume"):
            encode([src], out, _cfg(checkpoint=str(ck), checkpoint_seconds=1e9))
    assert ck.exists() and not out.exists()
    state = torch.load(ck, weights_only=True)["state"]   # plain tensors and values only
    assert state["step"] == stop_step                    # the interrupted step was finished, then saved
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    encode([src], out, _cfg(checkpoint=str(ck), resume=True))
    assert out.read_bytes() == reference
    assert not ck.exists()                               # removed once the file is written


def test_periodic_checkpoints_and_resume_from_one(tmp_path, src, reference, monkeypatch):
    out, ck = tmp_path / "out.nerv", tmp_path / "fit.ckpt"
    saved = []
    # every step is due (interval 0); stop after step 8 by a hard KeyboardInterrupt (no handler involved)
    with monkeypatch.context() as m:
        real = fit_module.batch_loss
        calls = {"n": 0}

        def loss(*a, **kw):
            calls["n"] += 1
            if calls["n"] == 9:
                raise KeyboardInterrupt
            return real(*a, **kw)

        m.setattr(fit_module, "batch_loss", loss)
        with pytest.raises(InterruptedError_):
            encode([src], out, _cfg(checkpoint=str(ck), checkpoint_seconds=0))
    saved.append(torch.load(ck, weights_only=True)["state"]["step"])
    assert saved == [8] and not out.exists()
    encode([src], out, _cfg(checkpoint=str(ck), resume=True))
    assert out.read_bytes() == reference


def test_resume_without_a_checkpoint_file_starts_afresh(tmp_path, src):
    ref, out = tmp_path / "ref.nerv", tmp_path / "out.nerv"
    encode([src], ref, _cfg(epochs=2))
    encode([src], out, _cfg(epochs=2, checkpoint=str(tmp_path / "none.ckpt"), resume=True))
    assert out.read_bytes() == ref.read_bytes()


def test_checkpoint_of_other_settings_is_refused(tmp_path, src, monkeypatch):
    ck = tmp_path / "fit.ckpt"
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        with pytest.raises(InterruptedError_):
            encode([src], tmp_path / "a.nerv", _cfg(checkpoint=str(ck), checkpoint_seconds=1e9))
    with pytest.raises(ConfigError, match="another input or other settings"):
        encode([src], tmp_path / "a.nerv", _cfg(seed=4, checkpoint=str(ck), resume=True))
    assert ck.exists()   # a refused resume keeps the checkpoint


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch EVIL_RAN",))


def test_checkpoint_is_never_unpickled_as_code(tmp_path, src, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "fit.ckpt"
    torch.save({"kind": "nervcodec-fit-checkpoint", "version": 1, "state": {"x": _Evil()}}, ck)
    with pytest.raises(FormatError, match="damaged or not a nervcodec checkpoint"):
        encode([src], tmp_path / "a.nerv", _cfg(checkpoint=str(ck), resume=True))
    assert not (tmp_path / "EVIL_RAN").exists()
    ck.write_bytes(b"\0garbage")
    with pytest.raises(FormatError):
        encode([src], tmp_path / "a.nerv", _cfg(checkpoint=str(ck), resume=True))


def test_checkpoint_options_on_the_cli(tmp_path, src):
    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args])

    fast = ["--model", "nerv", "--params", "2000", "--epochs", "1", "--device", "cpu", "-q"]
    res = run("encode", src, tmp_path / "o.nerv", *fast, "--resume")
    assert res.exit_code == 4 and "--resume needs --checkpoint" in res.stderr and "Traceback" not in res.output
    res = run("encode", src, tmp_path / "o.nerv", *fast, "--checkpoint", src)
    assert res.exit_code == 4 and "would overwrite" in res.stderr
    (tmp_path / "bad.ckpt").write_bytes(b"PK\x03\x04 not really")
    res = run("encode", src, tmp_path / "o.nerv", *fast, "--checkpoint", tmp_path / "bad.ckpt", "--resume")
    assert res.exit_code == 3 and res.stderr.count("\n") == 1 and "checkpoint" in res.stderr
    res = run("encode", src, tmp_path / "o.nerv", *fast, "--checkpoint", tmp_path / "c.ckpt", "--resume")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.nerv").exists() and not (tmp_path / "c.ckpt").exists()
