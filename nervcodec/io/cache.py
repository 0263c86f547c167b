"""An on-disk cache of frames and arrays, read back on demand (``--cache-dir``).

A collection too large to hold in memory is streamed once from its files into one raw
file per process (whole frames back to back, native planes, native byte order), and
every later reader takes only the frames it needs with ``os.pread``.  Nothing is mapped
into the process: the pages sit in the operating system's page cache, which the kernel
may drop under pressure, and a process's resident memory holds only what it is using.

* :class:`LazyPlane` is an (N, h, w) plane whose frames are read when indexed; a
  :class:`~nervcodec.io.video.Frames` of lazy planes works wherever frames are indexed
  (``planes[k][i]``, ``planes[k][[i, j]]``, ``planes[k][a:b]``);
* :class:`ArrayStore` keeps lists of arrays under keys (decoded keyframes), read back on
  lookup;
* :class:`RecordFile` keeps fixed-size records (training items) read back by index.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple

import numpy as np

from ..errors import OutputError
from .video import Frames, PixelFormat

__all__ = ["DiskCache", "LazyPlane", "ArrayStore", "RecordFile"]


class DiskCache:
    """A private folder of cache files, removed by :meth:`close` (the encoder closes it however the
    encode ends; a process killed outright leaves it behind, under the --cache-dir it was given)."""

    def __init__(self, parent: str | os.PathLike, tag: str = ""):
        try:
            os.makedirs(parent, exist_ok=True)
            self.folder = tempfile.mkdtemp(prefix=f"nervcodec-cache{tag}-", dir=parent)
        except OSError as exc:
            raise OutputError(f"cannot create a cache folder in {parent}: {exc.strerror or exc}") from None
        self._files: List["_Append"] = []

    def file(self, name: str) -> "_Append":
        f = _Append(os.path.join(self.folder, name))
        self._files.append(f)
        return f

    def store_frames(self, batches: Iterable[Frames], fmt: PixelFormat, width: int, height: int,
                     name: str) -> Frames:
        """Write frame batches to a new file; return them as :class:`Frames` of lazy planes."""
        f = self.file(name)
        n = 0
        for b in batches:
            for i in range(b.num_frames):
                f.append(b.to_bytes(i))
                n += 1
        return lazy_frames(f, 0, n, fmt, width, height)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
        for name in os.listdir(self.folder) if os.path.isdir(self.folder) else []:
            try:
                os.remove(os.path.join(self.folder, name))
            except OSError:
                pass
        try:
            os.rmdir(self.folder)
        except OSError:
            pass


class _Append:
    """One append-only file, readable at any offset while it grows."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot create the cache file {path}: {exc.strerror or exc}") from None
        self.size = 0

    def append(self, data: bytes) -> int:
        """Write ``data`` at the end; return its offset."""
        at = self.size
        view = memoryview(data)
        while view:
            try:
                n = os.pwrite(self.fd, view, self.size)
            except OSError as exc:
                raise OutputError(f"cannot write the cache file {self.path}: {exc.strerror or exc}") from None
            view = view[n:]
            self.size += n
        return at

    def read(self, offset: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            chunk = os.pread(self.fd, size - len(out), offset + len(out))
            if not chunk:
                raise OutputError(f"the cache file {self.path} is shorter than expected")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LazyPlane:
    """Plane ``k`` of ``n`` whole frames stored back to back from ``base`` in ``file``."""

    ndim = 3

    def __init__(self, file: _Append, base: int, n: int, frame_bytes: int, offset: int, shape: Tuple[int, int],
                 dtype: np.dtype):
        self.file, self.base, self.n = file, base, n
        self.frame_bytes, self.offset = frame_bytes, offset
        self.shape = (n, *shape)
        self.dtype = np.dtype(dtype)

    def __len__(self) -> int:
        return self.n

    def _one(self, i: int) -> np.ndarray:
        if not -self.n <= i < self.n:
            raise IndexError(f"frame {i} out of range (0..{self.n - 1})")
        i %= self.n
        size = self.shape[1] * self.shape[2] * self.dtype.itemsize
        raw = self.file.read(self.base + i * self.frame_bytes + self.offset, size)
        return np.frombuffer(raw, self.dtype).reshape(self.shape[1:]).copy()

    def __getitem__(self, item) -> np.ndarray:
        rest: tuple = ()
        if isinstance(item, tuple):
            item, rest = item[0], item[1:]
        arr = None if isinstance(item, slice) else np.asarray(item)
        if isinstance(item, (int, np.integer)) or (arr is not None and arr.ndim == 0 and arr.dtype.kind in "iu"):
            one = self._one(int(item))
            return one[rest] if rest else one
        if arr is not None and arr.dtype == bool:   # a mask over the frames, as numpy reads it
            if arr.shape != (self.n,):
                raise IndexError(f"boolean index of shape {arr.shape} for {self.n} frames")
            arr = np.nonzero(arr)[0]
        idx = range(self.n)[item] if arr is None else [int(i) for i in arr.reshape(-1)]
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        for k, i in enumerate(idx):
            out[k] = self._one(i)
        return out[(slice(None),) + rest] if rest else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def lazy_frames(file: _Append, base: int, n: int, fmt: PixelFormat, width: int, height: int) -> Frames:
    shapes = fmt.plane_shapes(width, height)
    per = fmt.frame_bytes(width, height)
    planes, off = [], 0
    for h, w in shapes:
        planes.append(LazyPlane(file, base, n, per, off, (h, w), fmt.dtype))
        off += h * w * fmt.dtype.itemsize
    return Frames(tuple(planes), fmt)


class ArrayStore(Mapping):
    """key -> list of arrays, kept in one cache file (e.g. decoded keyframes by (video, frame))."""

    def __init__(self, cache: DiskCache, name: str, single: bool = False):
        self.f = cache.file(name)
        self.index: Dict[object, List[Tuple[int, Tuple[int, ...], str]]] = {}
        self.single = single          # values are single arrays rather than lists

    def put(self, key: object, arrays) -> None:
        items = [arrays] if self.single else list(arrays)
        self.index[key] = [(self.f.append(np.ascontiguousarray(a).tobytes()), a.shape, a.dtype.str) for a in items]

    def __getitem__(self, key):
        out = [np.frombuffer(self.f.read(off, int(np.prod(shape)) * np.dtype(dt).itemsize), dt).reshape(shape).copy()
               for off, shape, dt in self.index[key]]
        return out[0] if self.single else out

    def __iter__(self) -> Iterator:
        return iter(self.index)

    def __len__(self) -> int:
        return len(self.index)


class RecordFile:
    """Fixed-layout records of named arrays (one training item each), read back by index."""

    def __init__(self, cache: DiskCache, name: str, layout: Sequence[Tuple[str, Tuple[int, ...], np.dtype]]):
        self.f = cache.file(name)
        self.layout = [(n, tuple(s), np.dtype(d)) for n, s, d in layout]
        self.record = sum(int(np.prod(s)) * d.itemsize for _, s, d in self.layout)
        self.count = 0

    def append(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Append one record per row of the arrays (each (R, *shape))."""
        rows = {n: np.ascontiguousarray(arrays[n], dtype=d) for n, _, d in self.layout}
        r = next(iter(rows.values())).shape[0]
        for k in range(r):
            self.f.append(b"".join(rows[n][k].tobytes() for n, _, _ in self.layout))
        self.count += r

    def read(self, idx: Sequence[int]) -> Dict[str, np.ndarray]:
        out = {n: np.empty((len(idx), *s), d) for n, s, d in self.layout}
        for k, i in enumerate(idx):
            raw = self.f.read(int(i) * self.record, self.record)
            off = 0
            for n, s, d in self.layout:
                size = int(np.prod(s)) * d.itemsize
                out[n][k] = np.frombuffer(raw[off:off + size], d).reshape(s)
                off += size
        return out


