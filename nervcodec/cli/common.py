"""Options shared by every subcommand."""
from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

import click

from ..errors import ConfigError, FitDivergedError, FormatError, InputError, InterruptedError_

__all__ = ["verbose_option", "set_verbose", "threads_option", "speaks", "fail", "COLLECTIVE"]

# Raised alike by every rank of a torchrun job (same inputs, same agreed decisions): said by rank 0 only.
COLLECTIVE = (ConfigError, InputError, FormatError, InterruptedError_, FitDivergedError)


def set_verbose(on: bool) -> None:
    """-v: log external commands and details, and show library warnings; otherwise only ours."""
    logging.getLogger().setLevel(logging.DEBUG if on else logging.WARNING)
    if on:
        warnings.simplefilter("default", UserWarning)


def _callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        set_verbose(True)


def verbose_option(f: Any) -> Any:
    """``-v`` after the subcommand too (``nervcodec encode ... -v``), as before it."""
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_callback,
                        help="Log external commands (ffmpeg) and details.")(f)


def _threads(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is None:
        return
    if value < 1:
        raise click.BadParameter("must be at least 1", ctx=ctx, param=param)
    import torch
    torch.set_num_threads(int(value))


def threads_option(f: Any) -> Any:
    """``--threads N``: CPU threads for torch (fitting, synthesis); default: torch's (the machine's cores)."""
    return click.option("--threads", type=int, default=None, expose_value=False, callback=_threads,
                        metavar="N", help="CPU threads for fitting and synthesis [all cores].")(f)


def speaks() -> bool:
    """Only one process of a torchrun job talks to the terminal: rank 0 (every rank still exits
    with the error's code)."""
    return os.environ.get("RANK", "0") == "0"


def fail(message: str, code: int, everywhere: bool = False) -> None:
    if speaks():
        click.echo(f"nervcodec: error: {message}", err=True)
    elif everywhere:
        click.echo(f"nervcodec: error (rank {os.environ.get('RANK')}): {message}", err=True)
    sys.exit(code)


