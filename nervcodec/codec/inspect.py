"""info: what a .nerv file holds, and its rate."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..container import (SECTION_KEYFRAMES, SECTION_NAMES, SECTION_WEIGHTS, NervFile, parse_keyframe_section,
                         read_file, tensor_rates)
from ..errors import FormatError
from ..model import model_spec_by_id
from .decode import meta_network
from .keyframes import keyframe_codec_name

__all__ = ["FileInfo", "inspect"]


@dataclass(frozen=True)
class FileInfo:
    path: str
    version: str
    bytes: int
    bpp: float
    model: str
    model_config: Dict[str, object]
    layout: Dict[str, object]
    quant_bits: int
    videos: List[Dict[str, object]]
    sections: Dict[str, int]
    header_bytes: int
    weights_bytes: int
    keyframe_bytes: int
    keyframe_codec: Optional[str]
    keyframe_quality: Optional[int]
    encoder: str
    params: int = 0
    bits_per_param: float = 0.0                 # bits of the weights section per network parameter
    tensors: List[Dict[str, object]] = field(default_factory=list)  # name, params, bytes, bits/param, method

    def to_dict(self) -> Dict[str, object]:
        return dict(self.__dict__)


def inspect(path: str | os.PathLike) -> FileInfo:
    nf = read_file(path)
    h = nf.header
    spec = model_spec_by_id(h.arch_id)
    tensors = _tensor_rates(nf)
    params = sum(int(t["params"]) for t in tensors)
    kf_codec = kf_q = None
    if SECTION_KEYFRAMES in nf.sections:
        ks = parse_keyframe_section(nf.sections[SECTION_KEYFRAMES])
        kf_codec, kf_q = keyframe_codec_name(ks.codec_id), ks.quality
    w = len(nf.sections.get(SECTION_WEIGHTS, b""))
    k = len(nf.sections.get(SECTION_KEYFRAMES, b""))
    return FileInfo(
        path=str(path), version=f"{nf.version[0]}.{nf.version[1]}", bytes=nf.size,
        bpp=nf.size * 8 / h.total_pixels, model=spec.name, model_config=dict(h.model.get("config", {})),
        layout=dict(h.model.get("layout", {})), quant_bits=h.quant_bits,
        videos=[{"name": v.name, "width": v.width, "height": v.height, "pix_fmt": v.pix_fmt.name,
                 "fps": f"{v.fps.numerator}/{v.fps.denominator}", "frames": v.num_frames} for v in h.videos],
        sections={SECTION_NAMES.get(t, str(t)): len(p) for t, p in nf.sections.items()},
        header_bytes=nf.size - w - k, weights_bytes=w, keyframe_bytes=k, keyframe_codec=kf_codec,
        keyframe_quality=kf_q, encoder=str(h.model.get("encoder", "")), params=params,
        bits_per_param=w * 8 / params if params else 0.0, tensors=tensors)


def _tensor_rates(nf: NervFile) -> List[Dict[str, object]]:
    """Each tensor's share of the weights section; empty when the stored model description does not
    give a plausible network (``info`` still shows the description; ``decode`` says what is wrong)."""
    if SECTION_WEIGHTS not in nf.sections:
        return []
    try:
        template = meta_network(nf).state_dict()
    except FormatError:
        return []
    return [{"name": t.name, "params": t.params, "bytes": t.bytes, "bits_per_param": t.bits_per_param,
             "method": t.method}
            for t in tensor_rates(nf.sections[SECTION_WEIGHTS], template, nf.version[0], nf.header.quant_bits)]
