"""Interruption and failure never leave a partial file nor damage an existing one.

* A real `nervcodec encode` subprocess gets SIGINT (Ctrl-C) or SIGTERM while fitting:
  exit code 130, one error line and no traceback, the pre-existing output (replaced
  only with --force, after success) untouched, no temporary file left; with
  --checkpoint the fitting state is saved first.
* In process: a decode that fails or is interrupted after some frames were written,
  and an encode that fails while writing, leave nothing behind.
"""
from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nervcodec.cli import cli
from nervcodec.codec import EncodeConfig, decode, encode
from nervcodec.errors import InterruptedError_, OutputError

OLD = b"an older file the user wants to keep"


def _start_encode(tmp_path: Path, src: Path, out: Path, *extra: str) -> tuple:
    err = tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("NERVCODEC_DEBUG", None)
    with open(err, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "nervcodec", "encode", str(src), str(out), "--model", "nerv",
                                 "--params", "2000", "--epochs", "1000000", "--device", "cpu", *extra],
                                stdout=subprocess.DEVNULL, stderr=fh, cwd=tmp_path, env=env)
    return proc, err


def _wait_for_fitting(proc, err: Path, timeout: float = 90.0) -> None:
    """Until the progress bar shows (the fit is running), then a little longer."""
    t0 = time.monotonic()
    while not re.search(rb"fitting \([^)]*\): ", err.read_bytes()):   # the bar: "fitting (effort): 3%|..."
        if proc.poll() is not None:
            pytest.fail(f"encode ended before it was interrupted: {err.read_text(errors='replace')}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("encode did not start fitting in time")
        time.sleep(0.1)
    time.sleep(0.5)


def _error_lines(err: Path) -> list:
    text = err.read_text(errors="replace")
    assert "Traceback" not in text, text
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("nervcodec: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], text
    return errors


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_fit_keeps_existing_output(tmp_path, clip_file, sig):
    src = clip_file(width=12, height=8, frames=3)[0]
    out = tmp_path / "out.nerv"
    out.write_bytes(OLD)
    proc, err = _start_encode(tmp_path, src, out, "--force")
    try:
        _wait_for_fitting(proc, err)
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, err.read_text(errors="replace")
    (line,) = _error_lines(err)
    assert "interrupted while fitting; nothing was written" in line
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "out.nerv", "stderr.txt"])


def test_sigint_with_checkpoint_saves_state_then_stops(tmp_path, clip_file):
    src = clip_file(width=12, height=8, frames=3)[0]
    out, ck = tmp_path / "out.nerv", tmp_path / "fit.ckpt"
    proc, err = _start_encode(tmp_path, src, out, "--checkpoint", str(ck))
    try:
        _wait_for_fitting(proc, err)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    (line,) = _error_lines(err)
    assert f"fitting state saved in {ck}" in line and "--resume" in line
    assert not out.exists()
    state = torch.load(ck, weights_only=True)["state"]
    assert state["step"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "fit.ckpt", "stderr.txt"])


# --------------------------------------------------------------------------- in process


@pytest.fixture
def nerv_file(tmp_path, clip_file):
    src = clip_file(width=12, height=8, frames=5)[0]
    out = tmp_path / "c.nerv"
    encode([src], out, EncodeConfig(model="nerv", params=2000, epochs=1, device="cpu"))
    return out


def _fail_after(monkeypatch, n: int, exc: BaseException) -> None:
    """Make synthesis raise ``exc`` after ``n`` frames (so a writer already holds data)."""
    dec_mod = importlib.import_module("nervcodec.codec.decode")
    real = dec_mod.synthesize

    def synth(*a, **kw):
        for k, item in enumerate(real(*a, **kw)):
            if k == n:
                raise exc
            yield item

    monkeypatch.setattr(dec_mod, "synthesize", synth)


@pytest.mark.parametrize("target", ["out.y4m", "out.mkv", "png/%03d.png", "folder/"])
@pytest.mark.parametrize("exc, expected", [(KeyboardInterrupt(), InterruptedError_),
                                           (RuntimeError("boom"), RuntimeError),
                                           (OSError(28, "No space left on device"), OSError)])
def test_failed_decode_leaves_nothing(tmp_path, nerv_file, monkeypatch, target, exc, expected):
    dest = tmp_path / "dest"
    dest.mkdir()
    path = dest / target
    if target.startswith("out"):
        path.write_bytes(OLD)
    before = {p.name for p in dest.iterdir()}
    _fail_after(monkeypatch, 2, exc)
    with pytest.raises(expected):
        decode(nerv_file, str(path) + ("/" if target.endswith("/") else ""), device="cpu", force=True)
    assert {p.name for p in dest.iterdir()} == before   # no temporary file or folder, no partial output
    if target.startswith("out"):
        assert path.read_bytes() == OLD


def test_interrupted_decode_on_the_cli_is_one_line(tmp_path, nerv_file, monkeypatch):
    _fail_after(monkeypatch, 1, KeyboardInterrupt())
    res = CliRunner().invoke(cli, ["decode", str(nerv_file), "-o", str(tmp_path / "x.y4m")])
    assert res.exit_code == 130 and res.stderr.count("\n") == 1 and "interrupted" in res.stderr
    assert not (tmp_path / "x.y4m").exists()


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_encode_failing_while_writing_keeps_existing_output(tmp_path, clip_file, monkeypatch, where):
    src = clip_file(width=12, height=8, frames=2)[0]
    out = tmp_path / "out.nerv"
    out.write_bytes(OLD)
    nf_mod = importlib.import_module("nervcodec.fsutil")

    def boom(*a, **kw):
        raise KeyboardInterrupt if where == "fsync" else OSError(28, "No space left on device")

    monkeypatch.setattr(nf_mod.os, where, boom)
    with pytest.raises((KeyboardInterrupt, OutputError)):
        encode([src], out, EncodeConfig(model="nerv", params=2000, epochs=1, device="cpu", force=True))
    monkeypatch.undo()
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "out.nerv"])
