"""Integer symbols <-> bytes.  Knows nothing about networks or files."""
from .coder import encode_symbols, decode_symbols, METHODS

__all__ = ["encode_symbols", "decode_symbols", "METHODS"]
