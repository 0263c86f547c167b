"""The command line (the only module that imports click)."""
from .main import cli, main

__all__ = ["cli", "main"]
