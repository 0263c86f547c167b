"""Little-endian byte writer and a bounds-checked reader.

Every length read from a file goes through :class:`Reader`, which refuses to
read or allocate past the end of its buffer, so a damaged file raises
:class:`~nervcodec.errors.FormatError` instead of crashing or allocating wildly.
"""
from __future__ import annotations

import struct

from .errors import FormatError

__all__ = ["Writer", "Reader"]


class Writer:
    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, v: int) -> "Writer":
        self._buf += struct.pack("<B", v)
        return self

    def u16(self, v: int) -> "Writer":
        self._buf += struct.pack("<H", v)
        return self

    def u32(self, v: int) -> "Writer":
        self._buf += struct.pack("<I", v)
        return self

    def u64(self, v: int) -> "Writer":
        self._buf += struct.pack("<Q", v)
        return self

    def varint(self, v: int) -> "Writer":
        """Unsigned LEB128."""
        if v < 0:
            raise ValueError("varint must be non-negative")
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                self._buf.append(byte | 0x80)
            else:
                self._buf.append(byte)
                return self

    def svarint(self, v: int) -> "Writer":
        """Signed LEB128 by zigzag: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
        return self.varint(2 * v if v >= 0 else -2 * v - 1)

    def raw(self, b: bytes) -> "Writer":
        self._buf += b
        return self

    def blob(self, b: bytes) -> "Writer":
        """A varint length, then the bytes."""
        return self.varint(len(b)).raw(b)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)


class Reader:
    def __init__(self, data: bytes | memoryview, what: str = "file"):
        self._data = memoryview(data)
        self._pos = 0
        self.what = what

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining:
            raise FormatError(f"{self.what} is truncated or damaged (needs {n} bytes at offset {self._pos}, "
                              f"{self.remaining} left)")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self._take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self._take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self._take(8))[0]

    def varint(self, limit: int = 1 << 40) -> int:
        v, shift = 0, 0
        while True:
            b = self.u8()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise FormatError(f"{self.what} has an over-long integer at offset {self._pos}")
        if v > limit:
            raise FormatError(f"{self.what} holds the value {v} where at most {limit} is allowed")
        return v

    def svarint(self, limit: int = 1 << 40) -> int:
        """A zigzag varint (see :meth:`Writer.svarint`) of magnitude at most ``limit``."""
        z = self.varint(2 * limit)
        return z >> 1 if not z & 1 else -((z + 1) >> 1)

    def raw(self, n: int) -> bytes:
        return bytes(self._take(n))

    def blob(self, limit: int | None = None) -> bytes:
        n = self.varint(self.remaining if limit is None else min(limit, self.remaining))
        return self.raw(n)

    def expect_end(self) -> None:
        if self.remaining:
            raise FormatError(f"{self.what} has {self.remaining} unexpected trailing bytes")
