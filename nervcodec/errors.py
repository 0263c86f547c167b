"""The one error family raised by nervcodec.

Library code raises only these; the command line turns any of them into a
one-line message and a non-zero exit code.  Each child names a cause the user
can act on.
"""
from __future__ import annotations

__all__ = [
    "NervCodecError",
    "InputError",
    "FormatError",
    "ToolError",
    "ToolNotFoundError",
    "ConfigError",
    "OutputError",
    "InterruptedError_",
    "FitDivergedError",
    "NervCodecWarning",
]


class NervCodecError(Exception):
    """Base class of every error nervcodec raises on purpose."""

    exit_code = 1


class InputError(NervCodecError):
    """The input video cannot be read or is not usable (missing, empty, unsupported)."""

    exit_code = 2


class FormatError(NervCodecError):
    """A .nerv file (or another structured input) is damaged, truncated or of an unknown version."""

    exit_code = 3


class ConfigError(NervCodecError):
    """Settings that contradict each other or are out of range."""

    exit_code = 4


class OutputError(NervCodecError):
    """The output cannot be written (unwritable folder, existing file without --force, ...)."""

    exit_code = 5


class ToolError(NervCodecError):
    """An external tool (ffmpeg) failed; the message carries the end of its stderr."""

    exit_code = 6


class ToolNotFoundError(ToolError):
    """An external tool could not be located."""


class InterruptedError_(NervCodecError):
    """The user interrupted a long operation (Ctrl-C); nothing partial was left behind."""

    exit_code = 130


class FitDivergedError(NervCodecError):
    """The fit diverged (non-finite loss or weights): nothing was written; a lower learning rate helps."""

    exit_code = 7


class NervCodecWarning(UserWarning):
    """Something worked but deserves the user's attention (e.g. a fit that ended worse than it started).

    The command line always shows these, even when it hides other libraries' warnings.
    """
