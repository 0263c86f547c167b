"""What a file decodes to on several devices: the entropy-decoded symbols and the decoded samples.

For each .nerv file: a digest of every symbol of its weights section (names and integer values; it must be
the same on every machine, since the decoder's probabilities are integer tables), the file decoded to y4m
on each device, the quality of each decode against the source when one is given, and how many 8-bit
samples of each decode differ from the first device's, and by how much at most (the synthesis network
runs in floating point, whose sums may round differently on another device or library).

    python benchmarks/devices.py A.nerv [B.nerv ...] [--device cpu --device cuda] [--source CLIP] [--json]

With several files, ``--source`` is given once per file, in the same order.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from nervcodec.codec import decode
from nervcodec.codec.decode import meta_network
from nervcodec.container import SECTION_WEIGHTS, read_file
from nervcodec.container.weights import quantized_tensors
from nervcodec.io import read_video
from nervcodec.metrics.quality import measure_frames


def symbols_digest(path) -> str:
    """SHA-256 (first 16 hex digits) over the weights section's tensors: name, then int64 symbols."""
    nf = read_file(path)
    q = quantized_tensors(nf.section(SECTION_WEIGHTS), meta_network(nf).state_dict(), nf.version[0],
                          nf.header.quant_bits)
    h = hashlib.sha256()
    for name, qt in q:
        h.update(name.encode())
        h.update(np.ascontiguousarray(qt.symbols, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def agree(path, devices, source=None) -> dict:
    """One file's row: its symbols' digest, and per device the decode's quality and its differences."""
    row = {"file": str(path), "symbols_sha256": symbols_digest(path), "devices": {}}
    reference = read_video(source)[1] if source is not None else None
    first = None
    with tempfile.TemporaryDirectory() as d:
        for k, dev in enumerate(devices):
            out = Path(d) / f"{k}.y4m"
            decode(path, out, device=dev)
            decoded = read_video(out)[1]
            planes = decoded.planes
            entry = {}
            if reference is not None:
                q = measure_frames(reference, decoded, ms_ssim=False)
                entry.update(psnr_rgb=q.psnr_rgb, psnr_y=q.psnr_y, psnr_yuv=q.psnr_yuv)
            if first is None:
                first = planes
            else:
                diff = [np.abs(a.astype(np.int32) - b.astype(np.int32)) for a, b in zip(first, planes)]
                entry.update(samples=int(sum(x.size for x in diff)),
                             samples_differing=int(sum(int((x > 0).sum()) for x in diff)),
                             max_difference=int(max(int(x.max()) for x in diff)))
            row["devices"][f"{k}:{dev}"] = entry
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--device", dest="devices", action="append", help="a device to decode on (repeatable) "
                    "[cpu, and cuda when present]")
    ap.add_argument("--source", action="append", default=[], help="the clip each file was encoded from")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if a.source and len(a.source) != len(a.files):
        ap.error(f"{len(a.files)} files but {len(a.source)} --source")
    if not a.devices:
        import torch
        a.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [agree(f, a.devices, a.source[i] if a.source else None) for i, f in enumerate(a.files)]
    if a.json:
        print(json.dumps(rows, indent=2))
    for r in rows if not a.json else []:
        print(f"{r['file']}: symbols {r['symbols_sha256']}")
        for dev, e in r["devices"].items():
            parts = [f"PSNR-RGB {e['psnr_rgb']:.4f} PSNR-YUV {e['psnr_yuv']:.4f}"] if "psnr_yuv" in e else []
            if "samples" in e:
                parts.append(f"{e['samples_differing']} of {e['samples']} samples differ from the first "
                             f"device's decode, by at most {e['max_difference']}")
            print(f"  {dev}: " + "; ".join(parts or ["decoded"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
