"""The bitstream: everything docs/format.md describes, byte by byte, lives in this package.

* :mod:`.nervfile`: magic, version, binary header, checksummed sections;
* :mod:`.model_header`: the header's model JSON (configuration, layout, encoder);
* :mod:`.weights`: the weights section (steps + entropy-coded integer symbols);
* :mod:`.keyframes`: the keyframes section (codec id, parameters, blobs).
"""
from .nervfile import (MAGIC, VERSION, READABLE_MAJORS, SECTION_WEIGHTS, SECTION_KEYFRAMES, SECTION_NAMES, PIXEL_FORMAT_CODES,
                       Header, NervFile, pack, unpack, read_file, write_file)
from .model_header import ModelHeader, make_header, read_model_header
from .weights import TensorRate, pack_weights, signed_symbols, tensor_rates, unpack_weights
from .keyframes import KeyframeSection, pack_keyframe_section, parse_keyframe_section

__all__ = ["MAGIC", "VERSION", "READABLE_MAJORS", "TensorRate", "signed_symbols", "tensor_rates", "SECTION_WEIGHTS", "SECTION_KEYFRAMES", "SECTION_NAMES", "PIXEL_FORMAT_CODES",
           "Header", "NervFile", "pack", "unpack", "read_file", "write_file", "ModelHeader", "make_header",
           "read_model_header", "pack_weights", "unpack_weights", "KeyframeSection", "pack_keyframe_section",
           "parse_keyframe_section"]
