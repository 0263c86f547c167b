"""Keyframe codecs built on compressai's learned image codecs (the D-NeRV paper uses Cheng 2020).

The models are RGB codecs, while nervcodec frames are native YUV planes, so a
keyframe goes through an explicit, documented conversion:

* YUV -> RGB: BT.601 matrix (Kr = 0.299, Kb = 0.114), limited range
  (luma 16..235, chroma 16..240, scaled by 2**(bit_depth-8) for 10/12-bit);
  chroma is upsampled by sample repetition; RGB is clipped to [0, 1].
* RGB -> YUV: the inverse matrix; chroma is downsampled by averaging each
  2x2 (4:2:0) or 2x1 (4:2:2) block, which exactly undoes the repetition;
  values are rounded to nearest and clipped to the code range.  Gray frames
  use luma only (R = G = B).
* The RGB image is padded to multiples of 64 by edge replication (cheaper to
  code than zeros) and the decoded image is cropped back.

A frame's blob holds compressai's strings (``[y]`` for the factorized model,
``[y, z]`` for the others) as ``len(s_0) s_0 ... s_last`` with LEB128
lengths; the latent shape is not stored, it follows from the frame size.
Frames are coded and decoded one at a time: a hyperprior's entropy
parameters are recomputed in floating point at the decoder, and batching
changes the float arithmetic, so batch size 1 on both sides is the only safe
choice.

Weights (never pickled objects: ``torch.load(weights_only=True)``):

* ``weights_path``: a compressai zoo checkpoint file (quality taken from its
  zoo file name, or from ``weights_quality``), a folder holding zoo
  checkpoint files under their zoo names, or a {quality: path} mapping;
* ``pretrained=True``: the zoo's checkpoint from the torch hub cache, or
  downloaded with a timeout (a clear :class:`ConfigError` when offline);
* ``allow_random=True``: seeded random initialisation (tests only), after
  ``update(force=True)``.

The file records ``model``, ``q``, ``metric``, ``weights`` (the first 16 hex
digits of the weights file's sha256, or ``random:<seed>``) and ``tables``
(a hash of the entropy coder's CDF tables as built on the encoder).  The
decoder refuses other weights, and refuses when its own tables differ (a
cross-platform float difference that would silently mis-decode).
Hyperprior and autoregressive models are ``portable = False``: their
bitstreams are known to mis-decode on another CPU/GPU (compressai issues
#279, #320, #235), even with identical tables.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError, FormatError, InputError
from ..fsutil import atomic_file
from ..io.video import Frames, PixelFormat
from .base import KeyframeCodec, ParamValue, PixFmtLike, as_pixel_format, join_streams, split_streams

__all__ = ["CompressAICodec", "LEARNED_MODELS", "yuv_to_rgb", "rgb_to_yuv", "file_sha256"]

PathLike = Union[str, "os.PathLike[str]"]
WeightsSpec = Union[PathLike, Mapping[int, PathLike], None]

# BT.601 luma weights.
_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
_HASH_HEX = 16  # 64 bits: plenty to catch the wrong file, and short in the .nerv header


@dataclass(frozen=True)
class _ModelInfo:
    """What nervcodec needs to know about one compressai zoo architecture."""

    qualities: Tuple[int, int]
    strings: int  # entries in compress()["strings"]
    stride: int  # input size / size of compress()["shape"]
    portable: bool


LEARNED_MODELS: Dict[str, _ModelInfo] = {
    "bmshj2018-factorized": _ModelInfo((1, 8), 1, 16, True),
    "bmshj2018-hyperprior": _ModelInfo((1, 8), 2, 64, False),
    "mbt2018-mean": _ModelInfo((1, 8), 2, 64, False),
    "mbt2018": _ModelInfo((1, 8), 2, 64, False),
    "cheng2020-anchor": _ModelInfo((1, 6), 2, 64, False),
    "cheng2020-attn": _ModelInfo((1, 6), 2, 64, False),
}
_METRICS = ("mse", "ms-ssim")


# --------------------------------------------------------------------------- colour conversion


def _limited(fmt: PixelFormat) -> Tuple[float, float, float, float]:
    s = float(1 << (fmt.bit_depth - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s  # y offset, y range, c offset, c range


def yuv_to_rgb(frames: Frames) -> np.ndarray:
    """Frames -> float32 RGB of shape (N, 3, H, W) in [0, 1] (BT.601 limited range, repeated chroma)."""
    fmt = frames.pix_fmt
    n, h, w = frames.num_frames, frames.height, frames.width
    yo, yr, co, cr = _limited(fmt)
    y = (frames.planes[0].astype(np.float64) - yo) / yr
    if not fmt.has_chroma:
        rgb = np.repeat(y[:, None], 3, axis=1)
    else:
        def up(p: np.ndarray) -> np.ndarray:
            p = np.repeat(np.repeat(p, 1 << fmt.log2_chroma_h, axis=1), 1 << fmt.log2_chroma_w, axis=2)
            return (p[:, :h, :w].astype(np.float64) - co) / cr
        cb, crr = up(frames.planes[1]), up(frames.planes[2])
        r = y + 2.0 * (1.0 - _KR) * crr
        b = y + 2.0 * (1.0 - _KB) * cb
        g = (y - _KR * r - _KB * b) / _KG
        rgb = np.stack([r, g, b], axis=1)
    assert rgb.shape == (n, 3, h, w)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def rgb_to_yuv(rgb: np.ndarray, pix_fmt: PixFmtLike) -> Frames:
    """Inverse of :func:`yuv_to_rgb`: (N, 3, H, W) RGB in [0, 1] -> frames of ``pix_fmt``.

    Chroma is the mean of each subsampling block (blocks cut by an odd edge
    average the samples they have), so repeat-then-average is the identity.
    """
    fmt = as_pixel_format(pix_fmt)
    rgb = np.asarray(rgb, dtype=np.float64)
    n, _, h, w = rgb.shape
    yo, yr, co, cr = _limited(fmt)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = _KR * r + _KG * g + _KB * b

    def code(x: np.ndarray, off: float, rng: float) -> np.ndarray:
        return np.clip(np.rint(off + rng * x), 0, fmt.max_value).astype(fmt.dtype)

    planes = [code(y, yo, yr)]
    if fmt.has_chroma:
        cw, ch = fmt.chroma_size(w, h)
        fy, fx = 1 << fmt.log2_chroma_h, 1 << fmt.log2_chroma_w
        for c in ((b - y) / (2.0 * (1.0 - _KB)), (r - y) / (2.0 * (1.0 - _KR))):
            padded = np.pad(c, ((0, 0), (0, ch * fy - h), (0, cw * fx - w)), mode="edge")
            mean = padded.reshape(n, ch, fy, cw, fx).mean(axis=(2, 4))
            planes.append(code(mean, co, cr))
    return Frames(tuple(planes), fmt)


# --------------------------------------------------------------------------- weights


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _zoo_urls(name: str, metric: str) -> Dict[int, str]:
    from compressai.zoo.image import model_urls
    return dict(model_urls.get(name, {}).get(metric, {}))


def _zoo_filename(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def download_checkpoint(url: str, folder: PathLike, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``folder`` (unless already there) and check the sha256 prefix in its name.

    Written here rather than with ``torch.hub`` because torch's downloader has
    no timeout: on a machine that is offline behind a silent firewall it would
    hang.  Any network failure becomes a :class:`ConfigError` telling the user
    to pass a local file.
    """
    folder = Path(folder)
    target = folder / _zoo_filename(url)
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URL from the zoo
            with atomic_file(target) as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConfigError(f"cannot download compressai weights from {url} ({exc}); this machine may be offline: "
                          f"download the file elsewhere and pass it as a weights file") from None
    m = re.search(r"-([a-f0-9]{6,})\.", target.name)
    if m and not file_sha256(target).startswith(m.group(1)):
        target.unlink()
        raise ConfigError(f"downloaded {target.name} is corrupt (sha256 does not start with {m.group(1)})")
    return target


def _load_state_dict(path: Path) -> Dict[str, Any]:
    """Tensors of a checkpoint, without unpickling arbitrary objects."""
    import torch
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"weights file {path} does not exist") from None
    except Exception as exc:  # pickle refusals, corrupt archives
        raise InputError(f"cannot read weights file {path}: {exc}") from None
    for key in ("state_dict", "network", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"weights file {path} is not a compressai state dict")
    from compressai.zoo import load_state_dict as rename_keys
    return rename_keys(dict(obj))


def _tables_hash(net: Any) -> str:
    """Hash of every entropy-coder table (CDFs, offsets, lengths, scale table) the model codes with."""
    h = hashlib.sha256()
    for name, buf in sorted(net.named_buffers()):
        if name.rsplit(".", 1)[-1] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"):
            arr = buf.detach().cpu().contiguous().numpy()
            h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:_HASH_HEX]


@dataclass
class _Loaded:
    net: Any
    weights: str  # "sha256:<hex16>" or "random:<seed>"
    tables: str


# --------------------------------------------------------------------------- codec


class CompressAICodec(KeyframeCodec):
    """A compressai zoo image codec used for keyframes (see the module docstring for the details)."""

    requires_weights = True

    def __init__(self, name: str, codec_id: int, *, metric: str = "mse", weights_path: WeightsSpec = None,
                 weights_quality: Optional[int] = None, pretrained: bool = False, allow_random: bool = False,
                 seed: int = 0, device: str = "cpu", download_timeout: float = 30.0,
                 cache_dir: Optional[PathLike] = None) -> None:
        if name not in LEARNED_MODELS:
            raise ConfigError(f"unknown compressai model {name!r} (known: {', '.join(LEARNED_MODELS)})")
        if metric not in _METRICS:
            raise ConfigError(f"compressai metric must be one of {', '.join(_METRICS)}, got {metric!r}")
        self.name = name
        self.codec_id = codec_id
        self.info = LEARNED_MODELS[name]
        self.portable = self.info.portable
        self.metric = metric
        self.pretrained = pretrained
        self.allow_random = allow_random
        self.seed = int(seed)
        self.device = device
        self.download_timeout = download_timeout
        self.cache_dir = cache_dir
        self._files: Dict[int, Path] = self._resolve_files(weights_path, weights_quality)
        self._models: Dict[int, _Loaded] = {}

    # -- weights sources ------------------------------------------------------------------
    def _resolve_files(self, spec: WeightsSpec, quality: Optional[int]) -> Dict[int, Path]:
        """Map qualities to local checkpoint files from a file, a folder or a mapping."""
        if spec is None:
            return {}
        lo, hi = self.info.qualities
        if isinstance(spec, Mapping):
            files = {int(q): Path(p) for q, p in spec.items()}
        else:
            path = Path(spec)
            by_name = {_zoo_filename(u): q for q, u in _zoo_urls(self.name, self.metric).items()}
            if path.is_dir():
                files = {q: path / n for n, q in by_name.items() if (path / n).is_file()}
                if not files:
                    raise InputError(f"no {self.name} ({self.metric}) zoo checkpoint found in {path} "
                                     f"(expected names like {next(iter(by_name), '?')})")
            elif path.is_file():
                q = quality if quality is not None else by_name.get(path.name)
                if q is None:
                    raise ConfigError(f"cannot tell the quality of weights file {path.name}: it is not a "
                                      f"{self.name} ({self.metric}) zoo file name; give weights_quality")
                files = {int(q): path}
            else:
                raise InputError(f"weights file {path} does not exist")
        for q in files:
            if not lo <= q <= hi:
                raise ConfigError(f"{self.name} has qualities {lo}..{hi}, got weights for quality {q}")
        return files

    @property
    def quality_range(self) -> Tuple[int, int]:
        if self._files:
            return (min(self._files), max(self._files))
        return self.info.qualities

    def supports(self, pix_fmt: PixFmtLike) -> bool:
        try:
            as_pixel_format(pix_fmt)
        except InputError:
            return False
        return True  # every nervcodec format converts to RGB and back

    def _torch(self) -> Any:
        try:
            import torch
            with warnings.catch_warnings():  # compressai's import-time torch.jit deprecation notice
                warnings.simplefilter("ignore", FutureWarning)
                import compressai  # noqa: F401
                import compressai.zoo  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"the {self.name} keyframe codec needs torch and compressai ({exc})") from None
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        return torch

    def model(self, quality: int) -> Any:
        """The ready-to-code network for ``quality`` (loaded once, cached)."""
        quality = self.check_quality(quality)
        if quality not in self._models:
            self._models[quality] = self._load(quality)
        return self._models[quality].net

    def _load(self, quality: int) -> _Loaded:
        torch = self._torch()
        from compressai.zoo.image import model_architectures
        from compressai.zoo import image_models
        if quality in self._files or self.pretrained:
            if quality in self._files:
                path = self._files[quality]
            else:
                url = _zoo_urls(self.name, self.metric).get(quality)
                if url is None:
                    raise ConfigError(f"compressai has no pretrained {self.name} ({self.metric}) for quality {quality}")
                folder = Path(self.cache_dir) if self.cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
                path = download_checkpoint(url, folder, self.download_timeout)
            state = _load_state_dict(path)
            try:
                net = model_architectures[self.name].from_state_dict(state)
            except (KeyError, RuntimeError) as exc:
                raise InputError(f"weights file {path} does not fit {self.name}: {str(exc)[:300]}") from None
            net.update(force=False)  # keep the checkpoint's CDF tables when it has them
            weights = "sha256:" + file_sha256(path)[:_HASH_HEX]
        elif self.allow_random:
            torch.manual_seed(self.seed)
            net = image_models[self.name](quality=quality, metric=self.metric, pretrained=False)
            net.update(force=True)
            weights = f"random:{self.seed}"
        elif self._files:
            raise ConfigError(f"no {self.name} weights for quality {quality} "
                              f"(have {', '.join(map(str, sorted(self._files)))})")
        else:
            raise ConfigError(f"the {self.name} keyframe codec needs weights: give a compressai zoo checkpoint "
                              f"file or folder, or allow downloading the pretrained ones")
        net = net.to(self.device).eval()
        if self.device != "cpu" and not self.portable:
            warnings.warn(f"{self.name} on {self.device}: its bitstream may not decode on another device",
                          stacklevel=3)
        return _Loaded(net, weights, _tables_hash(net))

    # -- interface --------------------------------------------------------------------------
    def params(self, quality: int) -> Dict[str, ParamValue]:
        quality = self.check_quality(quality)
        self.model(quality)
        loaded = self._models[quality]
        return {"model": self.name, "q": quality, "metric": self.metric, "weights": loaded.weights,
                "tables": loaded.tables}

    def _padded(self, width: int, height: int) -> Tuple[int, int]:
        return -(-width // 64) * 64, -(-height // 64) * 64

    def encode(self, frames: Frames, quality: int) -> List[bytes]:
        quality = self.check_quality(quality)
        self.check_format(frames.pix_fmt)
        torch = self._torch()
        net = self.model(quality)
        rgb = yuv_to_rgb(frames)
        pw, ph = self._padded(frames.width, frames.height)
        expect = (ph // self.info.stride, pw // self.info.stride)
        blobs = []
        with torch.inference_mode():
            for i in range(frames.num_frames):
                x = torch.from_numpy(rgb[i:i + 1]).to(self.device)
                x = torch.nn.functional.pad(x, (0, pw - frames.width, 0, ph - frames.height), mode="replicate")
                out = net.compress(x)
                if tuple(out["shape"]) != expect or len(out["strings"]) != self.info.strings:
                    raise ConfigError(f"{self.name} produced an unexpected latent layout "
                                      f"({tuple(out['shape'])}, {len(out['strings'])} strings)")
                blobs.append(join_streams([s[0] for s in out["strings"]]))
        return blobs

    def _check_params(self, params: Optional[Mapping[str, ParamValue]]) -> int:
        if not params:
            raise ConfigError(f"decoding {self.name} keyframes needs the parameters stored with them")
        if params.get("model", self.name) != self.name:
            raise FormatError(f"keyframes were coded with {params.get('model')}, not {self.name}")
        if params.get("metric", self.metric) != self.metric:
            raise ConfigError(f"keyframes were coded with the {params.get('metric')} {self.name} weights, "
                              f"but {self.metric} weights were given")
        try:
            quality = int(params["q"])
        except (KeyError, TypeError, ValueError):
            raise FormatError("keyframe parameters lack the quality") from None
        self.model(quality)
        loaded = self._models[quality]
        if str(params.get("weights")) != loaded.weights:
            raise ConfigError(f"the {self.name} weights given ({loaded.weights}) are not the ones the keyframes "
                              f"were coded with ({params.get('weights')}); pass the same weights file")
        if str(params.get("tables")) != loaded.tables:
            raise ConfigError(f"the entropy-coder tables of {self.name} built on this machine differ from the "
                              f"encoder's ({loaded.tables} vs {params.get('tables')}): the keyframes would "
                              f"decode wrongly here (known compressai cross-platform issue)")
        return quality

    def decode(self, blobs: Sequence[bytes], pix_fmt: PixFmtLike, width: int, height: int,
               params: Optional[Mapping[str, ParamValue]] = None) -> Frames:
        fmt = self.check_format(pix_fmt)
        quality = self._check_params(params)
        torch = self._torch()
        net = self.model(quality)
        pw, ph = self._padded(width, height)
        shape = torch.Size((ph // self.info.stride, pw // self.info.stride))
        if not blobs:
            return Frames.empty(fmt, width, height, 0)
        images = []
        with torch.inference_mode():
            for blob in blobs:
                strings = [[st] for st in split_streams(blob, self.info.strings, f"{self.name} keyframe")]
                try:
                    x_hat = net.decompress(strings, shape)["x_hat"]
                except Exception as exc:  # the entropy decoder rejects damaged data in many ways
                    raise FormatError(f"{self.name} keyframe cannot be decoded: {exc}") from None
                images.append(x_hat[0, :, :height, :width].clamp(0, 1).float().cpu().numpy())
        return rgb_to_yuv(np.stack(images), fmt)
