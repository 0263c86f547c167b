"""The one adapter around the ffmpeg binary.

Design: ffmpeg is used for what only it does well (decoding every video format,
colour conversion with swscale, the conventional encoders), and nervcodec talks
to it through this module alone.  Command lines are built with ffmpeg-python
(:func:`build_args`): it compiles an input -> output graph to a plain argument
list, needs no ffprobe and runs nothing, so a builder stays a pure function that
tests can check exactly.  The lists are then run here.

* The binary is the one inside the ``imageio-ffmpeg`` wheel unless the user
  names another with ``NERVCODEC_FFMPEG`` (a path).  A system ffmpeg is never
  required.
* :func:`build_args` compiles one or more inputs, the streams to map (optionally
  through one filter) and one output into an argument list without the binary.
  ffmpeg-python *sorts* the options of each input and of the output by name;
  ffmpeg does not care about their order inside one input or output, and what
  does need an order is kept by construction: input options precede their
  ``-i``, ``-map`` options follow the order of ``streams``, and global options
  (``global_args``) come first.
* :func:`run_ffmpeg` and :func:`start_ffmpeg` take such a list (the binary and
  the quiet defaults are added here), log it with :func:`shlex.join`, and a
  failure raises :class:`~nervcodec.errors.ToolError` carrying the end of
  ffmpeg's stderr.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import threading
from fractions import Fraction
from functools import lru_cache
from typing import IO, Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union, overload

import ffmpeg as ffmpeg_python  # the ffmpeg-python package: builds command lines, runs nothing here

from ..errors import ToolError, ToolNotFoundError

__all__ = ["FFMPEG_ENV", "SWS_FLAGS", "ffmpeg_exe", "build_args", "run_ffmpeg", "start_ffmpeg", "FFmpegProcess",
           "Options"]

log = logging.getLogger("nervcodec.ffmpeg")

FFMPEG_ENV = "NERVCODEC_FFMPEG"
_STDERR_TAIL = 2000
_BASE_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")
#: swscale flags of every conversion whose result must be reproducible: exact rounding,
#: full-resolution chroma interpolation, and no CPU-specific code paths.
SWS_FLAGS = "accurate_rnd+full_chroma_int+bitexact"

#: Options of one input or of the output: ffmpeg option name without the dash -> value.
#: ``None`` is a flag without a value (``{"an": None}`` -> ``-an``); names with a colon
#: are plain keys (``{"c:v": "libx264"}``).
Options = Mapping[str, Any]


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


# --------------------------------------------------------------------------- command lines

#: Keyword names to which ffmpeg-python gives a meaning of its own; the plain ffmpeg names
#: (``f``, ``s``, ``b:v``) say the same without surprises.
_RESERVED = frozenset({"filename", "format", "video_size", "video_bitrate", "audio_bitrate"})


def _option_value(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Fraction)):
        raise TypeError(f"ffmpeg option -{name}: value must be a str, int, float, Fraction or None, "
                        f"got {type(value).__name__}")
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return str(value)


def _options(options: Optional[Options]) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for name, value in (options or {}).items():
        if not isinstance(name, str) or not name or name.startswith("-") or name in _RESERVED:
            raise ValueError(f"bad ffmpeg option name {name!r} (give the name without its dash, e.g. 'c:v'; "
                             f"not one of {', '.join(sorted(_RESERVED))})")
        out[name] = _option_value(name, value)
    return out


def _respell(path: str, k: int) -> str:
    """The k-th repeat of an input path as a distinct but equivalent name (``file:/dir/./name``)."""
    if path == "-" or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", path):
        raise ValueError(f"input {path!r} is given more than once")
    folder, name = os.path.split(os.path.abspath(path))
    return "file:" + os.path.join(folder, *(["."] * k), name)


def build_args(inputs: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
               output: Union[str, "os.PathLike[str]"], *,
               input_options: Union[Options, Sequence[Optional[Options]], None] = None,
               output_options: Optional[Options] = None,
               streams: Sequence[str] = (),
               filter: Optional[Tuple[str, Options]] = None,
               global_args: Sequence[str] = ()) -> List[str]:
    """An ffmpeg argument list (without the binary) compiled by ffmpeg-python.

    * ``inputs``: one path (``"-"`` / ``"pipe:"`` for stdin) or a sequence of them, in order.
    * ``input_options``: the options of the single input, or one mapping (or None) per input.
    * ``streams``: what to map, in order: ``"0:V:0"`` is input 0's stream ``V:0``, a bare
      ``"1"`` the whole of input 1.  Every input must be used, and first used in input order
      (``["0:v", "1:a", "0:s"]`` is fine, ``["1:a", "0:v"]`` is not: ffmpeg-python numbers the
      inputs by first use).  Empty means every input as a whole, which for one input is
      ffmpeg's own default selection (no ``-map`` at all).
    * ``filter``: ``(name, options)`` of one filter applied to the mapped streams (in their
      order); its single output is then what is written.  Option values are escaped for the
      filtergraph by ffmpeg-python.
    * ``output_options``: options of the output.
    * ``global_args``: plain arguments put first (e.g. ``["-loglevel", "info", "-stats"]``).

    Options are given as ``{"name": value}`` (see :data:`Options`); ffmpeg-python writes
    those of each input and of the output sorted by name, which ffmpeg does not mind.

    >>> build_args("in.y4m", "out.mp4", streams=["0:v:0"], output_options={"c:v": "libx264", "an": None})
    ['-i', 'in.y4m', '-map', '0:v:0', '-an', '-c:v', 'libx264', 'out.mp4']
    """
    paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
    if not paths:
        raise ValueError("build_args needs at least one input")
    if input_options is None or isinstance(input_options, Mapping):
        per_input: List[Optional[Options]] = [input_options] + [None] * (len(paths) - 1)
        if input_options and len(paths) > 1:
            raise ValueError("with several inputs, give input_options as one mapping per input")
    else:
        per_input = list(input_options)
        if len(per_input) != len(paths):
            raise ValueError(f"{len(per_input)} sets of input options for {len(paths)} inputs")
    # ffmpeg-python merges identical inputs into one node (one -i); a repeated input (e.g. a video
    # scored against itself) is spelled as an equivalent file: path so that it is still opened twice.
    spelled: List[str] = []
    seen: Dict[Tuple[str, Tuple], int] = {}
    for p, o in zip(paths, per_input):
        key = (p, tuple(sorted(_options(o).items(), key=lambda kv: kv[0])))
        k = seen.get(key, 0)
        seen[key] = k + 1
        spelled.append(p if k == 0 else _respell(p, k))
    nodes = [ffmpeg_python.input(p, **_options(o)) for p, o in zip(spelled, per_input)]

    selected = []
    used = set()
    for spec in streams or [str(i) for i in range(len(paths))]:
        index, _, selector = str(spec).partition(":")
        if not index.isdigit() or int(index) >= len(paths):
            raise ValueError(f"stream {spec!r} names no input (there are {len(paths)})")
        if int(index) not in used and int(index) != len(used):
            # ffmpeg-python numbers the inputs in the order the streams first use them
            raise ValueError(f"streams must first use the inputs in their order (0, 1, ...), got {list(streams)}")
        used.add(int(index))
        selected.append(nodes[int(index)][selector] if selector else nodes[int(index)])
    if len(used) != len(paths):
        raise ValueError("every input must be used by a mapped stream")
    if filter is not None:
        name, options = filter
        selected = [ffmpeg_python.filter(selected, name, **_options(options))]
    args = ffmpeg_python.output(*selected, os.fspath(output), **_options(output_options)).get_args()
    order = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-i"]
    if order != spelled:  # pragma: no cover - ffmpeg-python keeps the order of the streams given
        raise AssertionError(f"ffmpeg-python reordered the inputs: {order} for {paths}")
    return [str(a) for a in global_args] + args


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
