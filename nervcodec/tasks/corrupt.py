"""``nervcodec noise``: a clean clip in, a reproducibly corrupted copy out, and a report of exactly
what was done (the report goes with the experiment, so that anyone can make the same input)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

from ..errors import OutputError
from ..io import open_writer, read_video
from ..metrics.rgb import frames_to_rgb24
from ..metrics.tasks import mean_psnr_rgb
from .noise import add_noise, parse_noise

__all__ = ["corrupt_file"]


def corrupt_file(source: str | os.PathLike, output: str | os.PathLike, spec: str, seed: int, *,
                 force: bool = False) -> Dict[str, object]:
    """Read ``source``, add the noise ``spec`` drawn from ``seed``, write ``output`` atomically (its
    format from its name, as ``decode`` does); return the report."""
    noise = parse_noise(spec)
    out = Path(output)
    if out.exists() and Path(source).exists() and os.path.samefile(source, out):
        raise OutputError(f"the output {out} is also the input; choose another name")
    if out.exists() and not force:
        raise OutputError(f"{out} exists; use --force to replace it")
    info, clean = read_video(source)
    noisy, report, _ = add_noise(clean, noise, seed)
    with open_writer(out, info) as writer:
        writer.write(noisy)
    report.update(source=os.fspath(source), output=os.fspath(out), spec=noise.spec,
                  psnr_rgb=mean_psnr_rgb(frames_to_rgb24(clean), frames_to_rgb24(noisy)),
                  command=f"nervcodec noise {os.fspath(source)} {os.fspath(out)} --noise {noise.spec} --seed {seed}")
    return report
