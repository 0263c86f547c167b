"""The .nerv file: magic, version, header, checksummed sections.  See docs/format.md."""
from .nervfile import (MAGIC, VERSION, SECTION_WEIGHTS, SECTION_KEYFRAMES, PIXEL_FORMAT_CODES, Header, NervFile,
                       pack, unpack, read_file, write_file, atomic_write_bytes)

__all__ = ["MAGIC", "VERSION", "SECTION_WEIGHTS", "SECTION_KEYFRAMES", "PIXEL_FORMAT_CODES", "Header", "NervFile",
           "pack", "unpack", "read_file", "write_file", "atomic_write_bytes"]
