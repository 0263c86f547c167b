"""The one adapter around the ffmpeg binary.

* The binary is the one inside the ``imageio-ffmpeg`` wheel unless the user
  names another with ``NERVCODEC_FFMPEG`` (a path).  A system ffmpeg is never
  required.
* Callers build plain argument lists (the binary itself is added here), the
  adapter logs them with :func:`shlex.join`, and a failure raises
  :class:`~nervcodec.errors.ToolError` carrying the end of ffmpeg's stderr.
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from functools import lru_cache
from typing import IO, Literal, Optional, Sequence, Tuple, Union, overload

from ..errors import ToolError, ToolNotFoundError

__all__ = ["FFMPEG_ENV", "ffmpeg_exe", "run_ffmpeg", "start_ffmpeg", "FFmpegProcess"]

log = logging.getLogger("nervcodec.ffmpeg")

FFMPEG_ENV = "NERVCODEC_FFMPEG"
_STDERR_TAIL = 2000
_BASE_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use (``$NERVCODEC_FFMPEG`` first, then imageio-ffmpeg's)."""
    override = os.environ.get(FFMPEG_ENV)
    if override:
        if not os.path.isfile(override) or not os.access(override, os.X_OK):
            raise ToolNotFoundError(f"${FFMPEG_ENV} points to {override!r}, which is not an executable file")
        return override
    return _bundled_ffmpeg()


@lru_cache(maxsize=1)
def _bundled_ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ToolNotFoundError("imageio-ffmpeg is not installed; install it or set $NERVCODEC_FFMPEG") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - wheel without binary
        raise ToolNotFoundError(f"no ffmpeg binary found ({exc}); set ${FFMPEG_ENV}") from exc


def _command(args: Sequence[str], quiet: bool = True) -> list:
    args = [str(a) for a in args]
    base = list(_BASE_ARGS) if quiet else ["-hide_banner", "-nostdin", "-y"]
    return [ffmpeg_exe(), *base, *args]


def _tail(data: bytes | str) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    data = data.strip()
    if len(data) > _STDERR_TAIL:
        data = "..." + data[-_STDERR_TAIL:]
    return data


def _error(cmd: Sequence[str], code: int, stderr: bytes | str, what: str) -> ToolError:
    tail = _tail(stderr)
    last = tail.splitlines()[-1] if tail else "no message"
    err = ToolError(f"ffmpeg failed while {what} (exit {code}): {last}")
    err.command = list(cmd)  # type: ignore[attr-defined]
    err.stderr = tail  # type: ignore[attr-defined]
    return err


@overload
def run_ffmpeg(args: Sequence[str], *, what: str = ..., input: Optional[bytes] = ...,
               capture_stdout: bool = ..., timeout: Optional[float] = ...,
               capture_stderr: Literal[False] = ...) -> bytes: ...


@overload
def run_ffmpeg(args: Sequence[str], *, what: str = ..., input: Optional[bytes] = ...,
               capture_stdout: bool = ..., timeout: Optional[float] = ...,
               capture_stderr: Literal[True]) -> Tuple[bytes, str]: ...


def run_ffmpeg(args: Sequence[str], *, what: str = "running", input: Optional[bytes] = None,
               capture_stdout: bool = False, timeout: Optional[float] = None,
               capture_stderr: bool = False) -> Union[bytes, Tuple[bytes, str]]:
    """Run ffmpeg to completion; return its stdout (empty unless ``capture_stdout``).

    With ``capture_stderr`` the result is ``(stdout, stderr_text)`` instead, for callers
    that parse ffmpeg's report (stream description, final ``frame=`` count); such callers
    usually add ``-loglevel info`` to ``args``, which overrides the quiet default.
    """
    cmd = _command(args)
    log.debug("ffmpeg: %s", shlex.join(cmd))
    try:
        proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ToolNotFoundError(f"cannot run ffmpeg at {cmd[0]!r}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"ffmpeg timed out after {timeout}s while {what}") from exc
    if proc.returncode != 0:
        raise _error(cmd, proc.returncode, proc.stderr, what)
    stdout = proc.stdout if capture_stdout else b""
    if capture_stderr:
        return stdout, proc.stderr.decode("utf-8", "replace")
    return stdout


class FFmpegProcess:
    """A running ffmpeg with piped stdin and/or stdout, for streaming raw frames.

    stderr is drained on a thread so a chatty ffmpeg never blocks; :meth:`finish`
    waits for the exit and raises :class:`ToolError` with stderr's tail on failure.
    Use as a context manager: leaving the block early kills the process.
    """

    def __init__(self, args: Sequence[str], *, what: str, stdin: bool, stdout: bool):
        self.cmd = _command(args)
        self.what = what
        log.debug("ffmpeg: %s", shlex.join(self.cmd))
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise ToolNotFoundError(f"cannot run ffmpeg at {self.cmd[0]!r}: {exc}") from exc
        self._stderr = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
            self._stderr += chunk
            if len(self._stderr) > 64 * _STDERR_TAIL:
                del self._stderr[: len(self._stderr) - 8 * _STDERR_TAIL]

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def read_exact(self, n: int) -> bytes:
        """Read exactly n bytes from stdout, or fewer only at end of stream."""
        buf = bytearray()
        while len(buf) < n:
            chunk = self.stdout.read(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def write(self, data: bytes) -> None:
        try:
            self.stdin.write(data)
        except BrokenPipeError:
            self.finish()  # raises with ffmpeg's own reason
            raise ToolError(f"ffmpeg closed its input while {self.what}")

    def finish(self) -> None:
        """Close stdin, wait for the exit, raise ToolError on failure."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        code = self.proc.wait()
        self._thread.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if code != 0:
            raise _error(self.cmd, code, bytes(self._stderr), self.what)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def __enter__(self) -> "FFmpegProcess":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.kill()


def start_ffmpeg(args: Sequence[str], *, what: str = "streaming", stdin: bool = False,
                 stdout: bool = False) -> FFmpegProcess:
    """Start ffmpeg with piped stdin/stdout for streaming."""
    return FFmpegProcess(args, what=what, stdin=stdin, stdout=stdout)
