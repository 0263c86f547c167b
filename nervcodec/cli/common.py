"""Options shared by every subcommand."""
from __future__ import annotations

import logging
import warnings
from typing import Any

import click

__all__ = ["verbose_option", "set_verbose"]


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
