"""VMAF through the bundled ffmpeg's libvmaf filter.

The imageio-ffmpeg binary is built with libvmaf and its models compiled in, so
no model file is needed.  libvmaf takes the *distorted* video first and the
reference second; swapping them gives a different (wrong) score, so the
argument builder names them explicitly.  The score is libvmaf's pooled mean
over frames, read from its JSON log.  The command line is compiled by
:func:`~nervcodec.tools.ffmpeg.build_args` (ffmpeg-python), which writes the
filter as ``-filter_complex [0:v][1:v]libvmaf=...[s0] -map [s0]`` and escapes its
option values for the filtergraph (as :func:`escape_filter_value` does).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import List

from ..errors import ToolError
from ..tools.ffmpeg import build_args, run_ffmpeg

__all__ = ["DEFAULT_VMAF_MODEL", "VmafResult", "vmaf_args", "vmaf_score", "escape_filter_value"]

DEFAULT_VMAF_MODEL = "vmaf_v0.6.1"


@dataclass(frozen=True)
class VmafResult:
    mean: float
    minimum: float
    frames: int
    model: str


def escape_filter_value(value: str) -> str:
    """Escape a string for use as an option value inside an ffmpeg filtergraph.

    Two levels, as ffmpeg's filtergraph documentation describes: first for the
    option parser (``\\ ' :``), then for the graph parser (``\\ ' [ ] , ;``).
    """
    level1 = "".join("\\" + c if c in "\\':" else c for c in value)
    return "".join("\\" + c if c in "\\'[],;" else c for c in level1)


def vmaf_args(distorted: str, reference: str, log_path: str, *, model: str = DEFAULT_VMAF_MODEL,
              threads: int = 0) -> List[str]:
    """ffmpeg arguments (no binary) scoring ``distorted`` against ``reference`` into a JSON log."""
    threads = threads or max(1, min(8, os.cpu_count() or 1))
    libvmaf = {"model": f"version={model}", "log_fmt": "json", "log_path": log_path, "n_threads": threads}
    return build_args([str(distorted), str(reference)], "-", streams=["0:v", "1:v"], filter=("libvmaf", libvmaf),
                      output_options={"f": "null"})


def vmaf_score(distorted: str, reference: str, *, model: str = DEFAULT_VMAF_MODEL, threads: int = 0) -> VmafResult:
    """VMAF of ``distorted`` against ``reference`` (any files ffmpeg reads, same size and frame count)."""
    tmp = tempfile.mkdtemp(prefix="nervcodec-vmaf-")
    try:
        log_path = os.path.join(tmp, "vmaf.json")
        run_ffmpeg(vmaf_args(distorted, reference, log_path, model=model, threads=threads),
                   what="computing VMAF")
        try:
            with open(log_path, "r", encoding="utf-8") as fp:
                log = json.load(fp)
            pooled = log["pooled_metrics"]["vmaf"]
            return VmafResult(float(pooled["mean"]), float(pooled["min"]), len(log.get("frames", [])), model)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"libvmaf wrote no usable score ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
