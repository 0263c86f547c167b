"""Fuzzing the .nerv readers: ``info`` and ``decode`` of damaged files either work or raise NervCodecError.

Mutants are made from small valid files (NeRV 4:2:0, NeRV gray, D-NeRV), in two kinds:

* raw damage (bit flips, truncation, inserted / deleted / overwritten bytes, extreme
  framing values): the CRCs are left stale, so most of it stops at a checksum;
* damage *behind* the CRCs: the header, the model JSON, the framing or a section
  payload is mutated and the file re-packed with correct checksums, so the parsers
  that trust a valid CRC (header fields, ``config_from_dict``, ``load_model``,
  ``unpack_weights`` / ``decode_symbols``, the keyframes section) really see the damage.

Each mutant is given to ``inspect`` (``nervcodec info``) and ``decode``; any exception
other than :class:`NervCodecError` fails the test, as does a failed decode that leaves
a file behind.  Allocations are bounded: the tests run under an ``RLIMIT_DATA`` of
the process's current data size plus :data:`MEMORY_HEADROOM`, so a reader that
believed a damaged length and allocated for it gets a MemoryError, which is a
failure here.  Hangs are caught by hypothesis' per-example deadline.

The helpers are also used by ``benchmarks/fuzz_long.py`` (10,000+ mutants).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import struct
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from nervcodec.bytesio import Reader, Writer
from nervcodec.container import MAGIC
from nervcodec.errors import NervCodecError

# --------------------------------------------------------------------------- the file's framing, without checks

MEMORY_HEADROOM = 1536 << 20   # 1.5 GiB: far above what decoding these tiny files needs


class Framed:
    """A .nerv file split into its parts, with no checksum verified (a test-side parser)."""

    def __init__(self, version: Tuple[int, int], header: bytes, sections: List[Tuple[int, bytes]]):
        self.version = version
        self.header = header
        self.sections = sections

    @staticmethod
    def parse(data: bytes) -> "Framed":
        assert data[:8] == MAGIC
        version = (data[8], data[9])
        hlen = struct.unpack_from("<I", data, 10)[0]
        header = data[14:14 + hlen]
        pos = 14 + hlen + 4
        count = data[pos]
        pos += 1
        sections = []
        for _ in range(count):
            kind, length = data[pos], struct.unpack_from("<I", data, pos + 1)[0]
            pos += 9
            sections.append((kind, data[pos:pos + length]))
            pos += length
        assert pos == len(data)
        return Framed(version, header, sections)

    def pack(self, *, count: Optional[int] = None, lengths: Optional[Dict[int, int]] = None) -> bytes:
        """Re-pack with correct CRCs (``count`` / ``lengths`` override the framing values only)."""
        out = bytearray(MAGIC) + bytes(self.version)
        out += struct.pack("<I", len(self.header)) + self.header + struct.pack("<I", zlib.crc32(self.header))
        out.append(len(self.sections) if count is None else count)
        for i, (kind, payload) in enumerate(self.sections):
            n = len(payload) if lengths is None or i not in lengths else lengths[i]
            out += bytes([kind]) + struct.pack("<II", n, zlib.crc32(payload)) + payload
        return bytes(out)

    def section_index(self, kind: int) -> Optional[int]:
        for i, (k, _) in enumerate(self.sections):
            if k == kind:
                return i
        return None


# --------------------------------------------------------------------------- header fields


def header_fields(hb: bytes) -> List[list]:
    """The header as a list of [kind, name, value] (kind: u8, varint, blob) in file order."""
    r = Reader(hb, "header")
    n = r.u8()
    fields: List[list] = [["u8", "video_count", n]]
    for i in range(n):
        fields.append(["blob", f"name{i}", r.blob()])
        fields += [["varint", f"{name}{i}", r.varint(1 << 63)] for name in ("width", "height")]
        fields.append(["u8", f"pix_fmt{i}", r.u8()])
        fields += [["varint", f"{name}{i}", r.varint(1 << 63)] for name in ("fps_num", "fps_den", "frames")]
    fields += [["u8", "arch_id", r.u8()], ["u8", "quant_bits", r.u8()], ["blob", "model", r.blob()]]
    r.expect_end()
    return fields


def pack_fields(fields: List[list]) -> bytes:
    w = Writer()
    for kind, _, v in fields:
        if kind == "u8":
            w.u8(v & 0xFF)
        elif kind == "varint":
            w.varint(v)
        else:
            w.blob(v)
    return w.getvalue()


EXTREME_INTS = [0, 1, 2, 3, 7, 8, 15, 16, 17, 127, 128, 255, 256, 16383, 16384, 16385, 65535, 65536,
                9_999_999, 10_000_000, 10_000_001, (1 << 31) - 1, 1 << 31, (1 << 31) + 1, (1 << 32) - 1, 1 << 32,
                1 << 40, (1 << 40) + 1, (1 << 63) - 1, 1 << 63, 1 << 70]


def _extreme_int(rnd: random.Random) -> int:
    if rnd.random() < 0.7:
        return rnd.choice(EXTREME_INTS)
    return rnd.randrange(0, 1 << rnd.choice([4, 8, 16, 24, 32, 48]))


EXTREME_JSON = [0, -1, 1, 2, 3, 4, 5, 7, 8, 16, 64, 65, 1000, 16384, 16385, 1 << 20, (1 << 31), (1 << 31) + 1,
                1 << 62, 10 ** 30, -(10 ** 30), 0.0, 0.5, -0.5, 1e-300, 1e308, -1e308, float("nan"), float("inf"),
                -float("inf"), "", "x", "gelu", "relu", "global", "video", None, True, False, [], [0], [1],
                [2, 2], [1, 1], [0, 0], [16384, 16384], [1 << 31, 1], [2] * 10, [2] * 65, [7, 7, 7], [-1, 2],
                [0.5, 2], ["a"], [[1]], {}, {"a": 1}]


def _json_paths(obj, prefix=()) -> List[tuple]:
    paths = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            paths.append(prefix + (k,))
            paths.extend(_json_paths(v, prefix + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            paths.append(prefix + (i,))
            paths.extend(_json_paths(v, prefix + (i,)))
    return paths


def mutate_json(model: dict, rnd: random.Random) -> dict:
    """One structural change of the header's model description (value, deletion, addition, type)."""
    model = json.loads(json.dumps(model))
    paths = _json_paths(model)
    op = rnd.random()
    if op < 0.08:
        return rnd.choice([[], "x", 1, None, {"config": model.get("config")}, {"layout": model.get("layout")}])
    path = rnd.choice(paths)
    parent = model
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    if op < 0.16 and isinstance(parent, dict):
        del parent[key]
    elif op < 0.22 and isinstance(parent, dict):
        parent[rnd.choice(["zzz", "height", "extra", "patch"]) + ("" if rnd.random() < 0.5 else "_")] = \
            rnd.choice(EXTREME_JSON)
    elif op < 0.28 and isinstance(parent, list):
        if rnd.random() < 0.5:
            parent.pop(key)
        else:
            parent.insert(key, rnd.choice(EXTREME_JSON))
    elif op < 0.5 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        v = parent[key]
        parent[key] = rnd.choice([v + 1, v - 1, v * 2, v // 2 if isinstance(v, int) else v / 2, -v, v * 1000])
    else:
        parent[key] = rnd.choice(EXTREME_JSON)
    return model


# --------------------------------------------------------------------------- byte-level mutations


def mutate_bytes(data: bytes, rnd: random.Random, n_ops: Optional[int] = None) -> bytes:
    """Bit flips, truncation, inserted / deleted / overwritten / duplicated bytes."""
    b = bytearray(data)
    for _ in range(n_ops or rnd.choice([1, 1, 1, 2, 3, 8])):
        op = rnd.randrange(8)
        if not b:
            b += bytes([rnd.randrange(256)])
            continue
        i = rnd.randrange(len(b))
        if op <= 2:
            b[i] ^= 1 << rnd.randrange(8)
        elif op == 3:
            del b[rnd.randrange(len(b) + 1):]
        elif op == 4:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.choice([1, 1, 2, 4, 16])))
        elif op == 5:
            del b[i:i + rnd.choice([1, 1, 2, 4, 16])]
        elif op == 6:
            v = rnd.choice([0x00, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
            n_new, n_old = rnd.choice([1, 4]), rnd.choice([1, 4])   # 1 or 4 bytes replaced by 1 or 4 bytes
            b[i:i + n_old] = bytes([v]) * (len(b[i:i + n_new]) or 1)
        else:
            j = rnd.randrange(len(b))
            n = rnd.choice([1, 4, 16, 64])
            b[i:i] = b[j:j + n]
    return bytes(b)


# --------------------------------------------------------------------------- mutant generators


def mutant_raw(data: bytes, rnd: random.Random) -> bytes:
    """Damage with the CRCs left as they were (what a real disk or network error does)."""
    if rnd.random() < 0.25:
        # extreme framing values in place: header length, section count / type / length
        f = Framed.parse(data)
        hlen = len(f.header)
        b = bytearray(data)
        where = rnd.choice(["hlen", "count", "kind", "slen", "version"])
        if where == "hlen":
            b[10:14] = struct.pack("<I", rnd.choice([0, 1, hlen - 1, hlen + 1, 1 << 20, (1 << 20) + 1, 0xFFFFFFFF]))
        elif where == "count":
            b[18 + hlen] = rnd.choice([0, 1, 2, 3, 16, 17, 255])
        elif where == "version":
            b[8:10] = bytes([rnd.choice([0, 1, 2, 255]), rnd.choice([0, 1, 255])])
        elif f.sections:
            off = 19 + hlen
            k = rnd.randrange(len(f.sections))
            for kind, payload in f.sections[:k]:
                off += 9 + len(payload)
            if where == "kind":
                b[off] = rnd.choice([0, 1, 2, 3, 255])
            else:
                b[off + 1:off + 5] = struct.pack("<I", rnd.choice([0, 1, len(f.sections[k][1]) + 1, 1 << 31,
                                                                  0xFFFFFFFF]))
        return bytes(b)
    return mutate_bytes(data, rnd)


def mutant_header(data: bytes, rnd: random.Random) -> bytes:
    """A header field set to an extreme value (or the header bytes damaged), CRC recomputed."""
    f = Framed.parse(data)
    fields = header_fields(f.header)
    op = rnd.random()
    if op < 0.3:
        f.header = mutate_bytes(f.header, rnd)
    elif op < 0.45:
        # add or remove a video entry (copies of the first), keeping video_count consistent or not
        vid = fields[1:9]
        if rnd.random() < 0.5:
            fields[1:1] = [list(x) for x in vid] * rnd.choice([1, 2])
        else:
            del fields[1:9]
        if rnd.random() < 0.7:
            fields[0][2] = (len(fields) - 4) // 8
        f.header = pack_fields(fields)
    else:
        i = rnd.randrange(len(fields) - 1)      # the model blob has its own generator
        kind, name, v = fields[i]
        if kind == "u8":
            fields[i][2] = rnd.choice([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 254, 255, rnd.randrange(256)])
        elif kind == "varint":
            fields[i][2] = _extreme_int(rnd)
        else:
            fields[i][2] = rnd.choice([b"", b"\xff\xfe", "é".encode() * 200, b"x" * 255, b"x" * 256,
                                       mutate_bytes(v, rnd)])
        f.header = pack_fields(fields)
    return f.pack()


def mutant_json(data: bytes, rnd: random.Random) -> bytes:
    """A change to the model configuration / layout JSON, CRC recomputed."""
    f = Framed.parse(data)
    fields = header_fields(f.header)
    model = json.loads(fields[-1][2])
    if rnd.random() < 0.15:
        blob = mutate_bytes(fields[-1][2], rnd)
    else:
        for _ in range(rnd.choice([1, 1, 1, 2, 3])):
            model = mutate_json(model, rnd) if isinstance(model, dict) else model
        blob = json.dumps(model, sort_keys=True, separators=(",", ":")).encode()
    fields[-1][2] = blob
    f.header = pack_fields(fields)
    return f.pack()


def mutant_section(data: bytes, rnd: random.Random) -> bytes:
    """A section payload damaged (or the section framing changed), CRCs recomputed."""
    f = Framed.parse(data)
    op = rnd.random()
    if op < 0.12:
        # framing: drop, duplicate, retype or reorder sections; lie about count / lengths
        sub = rnd.randrange(5)
        if sub == 0 and f.sections:
            f.sections.pop(rnd.randrange(len(f.sections)))
        elif sub == 1 and f.sections:
            f.sections.append(rnd.choice(f.sections))
        elif sub == 2 and f.sections:
            i = rnd.randrange(len(f.sections))
            f.sections[i] = (rnd.choice([0, 1, 2, 3, 255]), f.sections[i][1])
        elif sub == 3:
            return f.pack(count=rnd.choice([0, 1, 2, 3, 16, 17, 255]))
        elif f.sections:
            i = rnd.randrange(len(f.sections))
            return f.pack(lengths={i: rnd.choice([0, len(f.sections[i][1]) - 1, len(f.sections[i][1]) + 1,
                                                  0xFFFFFFFF])})
        return f.pack()
    if not f.sections:
        return f.pack()
    i = rnd.randrange(len(f.sections))
    kind, payload = f.sections[i]
    if rnd.random() < 0.2 and len(payload) > 2:
        # overwrite a run at a random place with a varint / float16 extreme: lengths, scales, counts
        pos = rnd.randrange(len(payload))
        extreme = rnd.choice([Writer().varint(_extreme_int(rnd)).getvalue(), b"\x00\x7c", b"\x00\xfc", b"\x00\x7e", b"\xff\x7b",
                              b"\x00\x00", b"\xff\xff\xff\xff\x0f", bytes([rnd.randrange(8)])])
        payload = payload[:pos] + extreme + payload[pos + rnd.choice([0, 1, len(extreme)]):]
    else:
        payload = mutate_bytes(payload, rnd)
    f.sections[i] = (kind, payload)
    return f.pack()


GENERATORS: Dict[str, Callable[[bytes, random.Random], bytes]] = {
    "raw": mutant_raw, "header": mutant_header, "json": mutant_json, "section": mutant_section,
}


# --------------------------------------------------------------------------- running one mutant


@contextlib.contextmanager
def memory_limit(headroom: int = MEMORY_HEADROOM):
    """Cap the data segment (heap and anonymous mappings) at the current size + ``headroom``."""
    try:
        import resource
        with open("/proc/self/status") as fh:
            data_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmData:"))
    except (ImportError, OSError, StopIteration):  # pragma: no cover - not Linux
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = data_kb * 1024 + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


class Unclean(AssertionError):
    """A reader failed with something other than NervCodecError, or left a file behind."""


def frame_cap(data: bytes) -> Tuple[Optional[str], Optional[str]]:
    """(video, frames) arguments that keep a decode small when a damaged header claims a long video.

    A header saying 10 million frames may be perfectly parseable: decoding it all would
    be legitimate but slow, so the fuzzer decodes only the first frames of it.
    """
    from nervcodec.container import unpack
    try:
        h = unpack(data).header
    except NervCodecError:
        return None, None
    if h.total_frames <= 64 and h.total_pixels <= 64 * 64 * 64:
        return None, None
    return "0", f"0:{min(2, h.videos[0].num_frames)}"


def check_mutant(data: bytes, workdir: Path) -> Dict[str, str]:
    """Run info and decode on ``data``; return {'info': outcome, 'decode': outcome} or raise Unclean."""
    from nervcodec.codec import decode, inspect
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "mutant.nerv"
    src.write_bytes(data)
    out = workdir / "out.y4m"      # a folder of one file per video when the header lists several
    _remove(out)
    result = {}
    video, frames = frame_cap(data)
    for op in ("info", "decode"):
        try:
            if op == "info":
                inspect(src)
            else:
                decode(src, out, device="cpu", video=video, frames=frames)
            result[op] = "ok"
        except NervCodecError as exc:
            result[op] = type(exc).__name__
            if op == "decode" and out.is_file():
                raise Unclean(f"decode failed ({exc}) but left {out}")
        except Exception as exc:
            raise Unclean(f"{op}: {type(exc).__name__}: {exc}") from exc
        left = sorted(set(os.listdir(workdir)) - {"mutant.nerv", "out.y4m"})
        if out.is_dir():   # only complete videos of a collection may stay, no temporary files
            left += [f"out.y4m/{n}" for n in os.listdir(out) if n.startswith(".")]
        if left:
            raise Unclean(f"{op} left temporary files: {left}")
    _remove(out)
    return result


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# --------------------------------------------------------------------------- seed files


def make_seed_files(folder: Path, dnerv: bool = True) -> Dict[str, bytes]:
    """Tiny valid files to mutate: NeRV (gray and 4:2:0) and D-NeRV; any encode failure is an error."""
    import torch

    from nervcodec.codec import EncodeConfig, encode
    from nervcodec.io import write_video
    from conftest import make_clip  # tests/ is on sys.path under pytest and in fuzz_long.py

    torch.set_num_threads(1)
    seeds = {}
    jobs = [("nerv420", dict(width=16, height=12, frames=3), EncodeConfig(model="nerv", params=2000, epochs=1,
                                                                         device="cpu", force=True)),
            ("nervgray", dict(width=10, height=8, frames=2, pix_fmt="gray"),
             EncodeConfig(model="nerv", params=1500, epochs=1, device="cpu", force=True))]
    if dnerv:
        jobs.append(("dnerv", dict(width=16, height=16, frames=3),
                     EncodeConfig(model="dnerv", params=6000, epochs=1, device="cpu", force=True, clip_len=2)))
    for name, clip, cfg in jobs:
        info, fr = make_clip(name=name, **clip)
        src = folder / f"{name}.y4m"
        write_video(src, info, fr)
        encode([src], folder / f"{name}.nerv", cfg)
        seeds[name] = (folder / f"{name}.nerv").read_bytes()
    return seeds


# --------------------------------------------------------------------------- the tests

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Dict[str, bytes]:
    return make_seed_files(tmp_path_factory.mktemp("fuzz-seeds"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-work")


def test_seed_files_decode(seeds, workdir):
    assert set(seeds) == {"nerv420", "nervgray", "dnerv"}
    for data in seeds.values():
        assert check_mutant(data, workdir / "seed") == {"info": "ok", "decode": "ok"}


def test_framing_helpers_roundtrip(seeds):
    for data in seeds.values():
        f = Framed.parse(data)
        assert f.pack() == data
        assert pack_fields(header_fields(f.header)) == f.header


_FUZZ = settings(max_examples=125, deadline=10_000, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                        HealthCheck.data_too_large])


def _fuzz(kind: str, seeds, workdir, name: str, rnd: random.Random) -> None:
    data = seeds[name]
    mutant = GENERATORS[kind](data, rnd)
    with memory_limit():
        check_mutant(mutant, workdir / kind)


@pytest.mark.parametrize("kind", ["raw", "header", "json", "section"])
@_FUZZ
@given(name=st.sampled_from(["nerv420", "nervgray", "dnerv"]), rnd=st.randoms(use_true_random=False))
def test_fuzz(kind, seeds, workdir, name, rnd):
    """raw: damage with stale CRCs; header / json / section: damage re-packed with correct CRCs."""
    _fuzz(kind, seeds, workdir, name, rnd)


@pytest.mark.parametrize("field, value", [
    ("video_count", 0), ("video_count", 255), ("width0", 16384), ("width0", 16385), ("height0", 1 << 40),
    ("frames0", 10_000_000), ("frames0", 10_000_001), ("fps_num0", 0), ("fps_den0", (1 << 31) + 1),
    ("pix_fmt0", 200), ("arch_id", 99), ("quant_bits", 1), ("quant_bits", 17),
])
def test_extreme_header_values(seeds, workdir, field, value):
    for name, data in seeds.items():
        f = Framed.parse(data)
        fields = header_fields(f.header)
        next(x for x in fields if x[1] == field)[2] = value
        f.header = pack_fields(fields)
        with memory_limit():
            res = check_mutant(f.pack(), workdir / "extreme")
        if (field, value) in (("frames0", 10_000_000), ("width0", 16384)):
            continue  # within the format's bounds: may decode (a long video; a wide one made of repeated tiles)
        assert res["decode"] != "ok", (name, field, value, res)


@pytest.mark.parametrize("hlen", [0, 0xFFFFFFFF, (1 << 20) + 1])
def test_extreme_framing_values(seeds, workdir, hlen):
    data = bytearray(seeds["nerv420"])
    data[10:14] = struct.pack("<I", hlen)
    with memory_limit():
        res = check_mutant(bytes(data), workdir / "framing")
    assert res == {"info": "FormatError", "decode": "FormatError"}


# --------------------------------------------------------------------------- the entropy decoder on its own

_FAST = settings(max_examples=150, deadline=10_000, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _decode_any(blob: bytes, count: int) -> None:
    import numpy as np

    from nervcodec.bytesio import Reader
    from nervcodec.entropy import decode_symbols
    from nervcodec.errors import FormatError
    try:
        out = decode_symbols(Reader(blob, "fuzz"), count)
    except FormatError:
        return
    assert out.shape == (count,) and out.dtype == np.int64


@_FAST
@given(blob=st.binary(max_size=300), count=st.integers(1, 5000))
def test_decode_symbols_on_arbitrary_bytes(blob, count):
    with memory_limit():
        _decode_any(blob, count)


@_FAST
@given(symbols=st.lists(st.integers(0, 300), min_size=1, max_size=400), rnd=st.randoms(use_true_random=False),
       spread=st.sampled_from([1, 1, 7, 3000]))
def test_decode_symbols_on_damaged_blobs(symbols, rnd, spread):
    import numpy as np

    from nervcodec.entropy import encode_symbols
    arr = np.array(symbols) * spread
    blob = encode_symbols(arr)
    with memory_limit():
        _decode_any(mutate_bytes(blob, rnd), arr.size + rnd.choice([0, 0, 0, -1, 1]) or 1)
