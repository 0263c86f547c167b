"""What an entropy coder buys on files already written: re-code their weights sections with this
version's coder, symbol for symbol.

The quantized symbols are read from each file and coded again (every method the coder has, the
cheapest per tensor); the script checks that the new section decodes to exactly the same symbols
(so the decoded video is the same) and reports both files' sizes on disk and each method's share.
With ``--write`` it keeps the re-coded files (``NAME.recoded.nerv``), which ``nervcodec decode``
reads like any other.

    python benchmarks/recode.py A.nerv [B.nerv ...] [--write] [--json]
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from nervcodec.codec.decode import meta_network
from nervcodec.container import SECTION_WEIGHTS, pack, pack_weights, read_file, tensor_rates
from nervcodec.container.weights import quantized_tensors


def recode(path: Path, write: bool) -> dict:
    nf = read_file(path)
    template = meta_network(nf).state_dict()
    items = quantized_tensors(nf.sections[SECTION_WEIGHTS], template, nf.version[0], nf.header.quant_bits)
    t0 = time.perf_counter()
    section = pack_weights(items)
    code_s = time.perf_counter() - t0
    data = pack(nf.header, {**nf.sections, SECTION_WEIGHTS: section})
    t0 = time.perf_counter()
    again = quantized_tensors(section, template)
    decode_s = time.perf_counter() - t0
    if not all(n == m and np.array_equal(a.symbols, b.symbols) and np.array_equal(a.step, b.step)
               for (n, a), (m, b) in zip(items, again)):
        raise SystemExit(f"{path}: the re-coded section does not decode to the same symbols")
    if write:
        Path(str(path).replace(".nerv", ".recoded.nerv")).write_bytes(data)
    pixels = nf.header.total_pixels
    methods = Counter()
    for t in tensor_rates(section, template):
        methods[t.method] += t.bytes
    return {"file": str(path), "bytes": nf.size, "recoded_bytes": len(data), "bpp": nf.size * 8 / pixels,
            "recoded_bpp": len(data) * 8 / pixels, "change": len(data) / nf.size - 1,
            "weights_bytes": len(nf.sections[SECTION_WEIGHTS]), "recoded_weights_bytes": len(section),
            "recoded_bytes_by_method": dict(methods), "code_seconds": code_s, "decode_seconds": decode_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--write", action="store_true", help="keep NAME.recoded.nerv next to each file")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = [recode(f, a.write) for f in a.files]
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['file']}: {r['bytes']} -> {r['recoded_bytes']} bytes ({100 * r['change']:+.1f} %), "
              f"bpp {r['bpp']:.4f} -> {r['recoded_bpp']:.4f}; weights {r['weights_bytes']} -> "
              f"{r['recoded_weights_bytes']}; by method {r['recoded_bytes_by_method']}; "
              f"coding {r['code_seconds']:.2f} s, decoding {r['decode_seconds']:.2f} s")


if __name__ == "__main__":
    main()
