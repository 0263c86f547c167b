"""The header's model description: compact JSON that rebuilds the network and its layout.

``Header.model`` is ``{"config": {...}, "layout": {...}, "encoder": "nervcodec X.Y"}``:
the registered model's frozen configuration (every field, see
:func:`nervcodec.model.config_to_dict`), the layout of clips and patches the
decoder must cut exactly as the encoder did, and the writer's name.  The
architecture itself is the header's ``arch_id`` (see the model registry).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Sequence

from .. import __version__
from ..errors import FormatError
from ..io.video import VideoInfo
from ..model import ModelSpec, config_from_dict, config_to_dict, model_spec_by_id
from .nervfile import Header

__all__ = ["make_header", "ModelHeader", "read_model_header"]


def make_header(videos: Sequence[VideoInfo], spec: ModelSpec, quant_bits: int, config: Any,
                layout: Mapping[str, Any]) -> Header:
    """The file header for ``videos`` coded by ``spec``'s model with ``config``, cut by ``layout``."""
    return Header(tuple(videos), spec.arch_id, quant_bits,
                  {"config": config_to_dict(config), "layout": dict(layout), "encoder": f"nervcodec {__version__}"})


@dataclass(frozen=True)
class ModelHeader:
    spec: ModelSpec
    config: Any
    layout: Dict[str, Any]
    encoder: str


def read_model_header(header: Header) -> ModelHeader:
    """The model's spec, checked configuration and layout dict from a parsed header (untrusted input)."""
    spec = model_spec_by_id(header.arch_id)
    config = config_from_dict(spec.config_cls, header.model.get("config"))
    layout = header.model.get("layout")
    if not isinstance(layout, dict):
        raise FormatError("the file's layout is not an object")
    return ModelHeader(spec, config, layout, str(header.model.get("encoder", "")))
