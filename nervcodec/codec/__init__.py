"""encode / decode / info: the codec's public functions."""
from .config import EncodeConfig, PRESETS
from .decode import DecodeResult, decode
from .encode import EncodeResult, encode
from .inspect import FileInfo, inspect

__all__ = ["EncodeConfig", "PRESETS", "EncodeResult", "encode", "DecodeResult", "decode", "FileInfo", "inspect"]
