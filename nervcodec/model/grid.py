"""Latent grids: a video as entropy-coded 3-D latent grids and a tiny synthesis network.

NeRV and D-NeRV keep a clip's content in network weights, which a short or small
clip cannot amortise.  This model keeps it in *latents*: per spatial level
``l = 0 .. L-1`` (stride ``2^l``) three grids of numbers that are quantized and
entropy-coded like any other tensor of the file (a learned step and an entropy
model per tensor, chosen by coded size; see :mod:`nervcodec.quant`):

* ``frame{l}``: one latent map per frame, ``(frames, ceil(H / 2^l), ceil(W / 2^l))``:
  what changes from frame to frame;
* ``group{l}``: one map per *group boundary*, ``(groups + 1, ...)``: group ``g``
  (frames ``gG .. gG + G - 1``) blends its two boundary maps linearly in time, so
  content that changes slowly costs one map per group instead of one per frame;
* ``still{l}`` (``still=True``): one map shared by every frame: content that stays
  put is coded once for the whole video instead of once per group boundary.

A frame's latents are its own ``frame`` maps (fractional times, as in frame-rate
up-conversion, blend the two nearest), its group's blend and the still maps; each
level is upsampled (bicubic) to the frame size, and a synthesis network that costs
about 1,300 multiply-adds per pixel (at 7 levels) turns the ``3L`` values of each pixel into
the planes::

    z (3L, H, W) -> per pixel: Linear -> ReLU -> Linear -> ReLU -> Linear -> x (C)
    x = x + conv3x3(ReLU(conv3x3(x)))          (a little spatial refinement)
    out = clamp(x + 1/2, 0, 1)                 (straight-through)

Everything a pixel needs comes from its own frame's maps, its group's two boundary
maps and the still maps: any frame (and any group) is reconstructed without
decoding the others, which is random access.  Latents start at zero (the untrained model outputs a flat
frame), as in Cool-chic; the rate term is on for most of the fit (``ModelSpec.rate_start``)
so the latents grow only where they buy distortion.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import ModelSpec, VideoModel, register_model
from .dnerv import straight_through_clamp

__all__ = ["LatentGridConfig", "LatentGrid", "KeyedGridConfig", "KeyedLatentGrid", "plan_latent_grid", "decode_pieces",
           "plan_keyed_grid", "latent_grid_param_count", "DEFAULT_GROUP"]

DEFAULT_GROUP = 16      # frames per group (--gop)
MAX_LEVELS = 8
MIN_SIDE = 2            # the coarsest level keeps at least this many latents along its shorter side
LATENT_PREFIXES = ("frame", "group", "still")
MOTION_OUTPUTS = 5      # (dx, dy) towards each keyframe and a correction of their blend weight
MOTION_SCALE = 2.0      # pixels of displacement per unit of the network's output
MOTION_DEFAULT = True   # what new latent-grid-kf files use (docs/benchmarks.md, "Motion-compensated keyframes")
# the hidden widths of new latent-grid-kf files: the widest whose synthesis (every weight that is not a latent)
# takes at most NETWORK_SHARE of the weights the budget holds at 4 bits each, so that a small budget is not spent
# on the network (the dev clips' measured rates all get the first; (40, 40) was measured and not kept:
# docs/benchmarks.md, "A larger keyframe share for the grids on carphone, and a wider synthesis not kept")
KEYED_WIDTHS = ((24, 24), (16, 16), (12, 12), (8, 8))
NETWORK_SHARE = 1 / 3
DECODE_PIECE = 1 << 13  # pixels per piece of the decoder's per-pixel network on a CPU (LatentGrid._decode_pixels):
# its three layers over one 176x144 frame took 1.18 ms in pieces of 8,192 pixels, 1.07 ms in halves of the frame,
# 1.32 ms in pieces of 4,096 and 1.8 ms in one piece (microbenchmark, 2 threads, best of 15 interleaved runs)


@dataclass(frozen=True)
class LatentGridConfig:
    height: int                     # the frame size (no padding: levels are ceil-divided)
    width: int
    channels: int                   # 3 (Y, U, V at full resolution) or 1 (gray)
    frames: int                     # frames of the whole input (times are frame / frames)
    group: int                      # frames per group
    levels: int                     # spatial levels, strides 1, 2, ..., 2^(levels-1)
    hidden: Tuple[int, ...] = (24, 24)   # widths of the 1x1 synthesis layers
    refine: int = 1                 # residual 3x3 refinement blocks on the output planes
    upsample: str = "bicubic"       # bilinear | bicubic
    gain: float = 5.0               # latents enter the synthesis as gain x the stored values (see below)
    still: bool = True              # one more map per level, shared by every frame (what never moves)

    def __post_init__(self) -> None:
        if min(self.height, self.width, self.frames, self.group, self.levels) < 1:
            raise ValueError("sizes must be positive")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if self.levels > MAX_LEVELS:
            raise ValueError(f"at most {MAX_LEVELS} levels")
        if not self.hidden or min(self.hidden) < 1 or len(self.hidden) > 4:
            raise ValueError("one to four positive hidden widths")
        if not 0 <= self.refine <= 4:
            raise ValueError("refine must be in 0..4")
        if not 0 < self.gain <= 1000:
            raise ValueError("gain must be in (0, 1000]")
        if self.upsample not in ("bilinear", "bicubic"):
            raise ValueError(f"unknown upsampling {self.upsample!r}")

    @property
    def groups(self) -> int:
        return -(-self.frames // self.group)

    @property
    def maps(self) -> int:
        """Latent maps a pixel reads per level."""
        return 3 if self.still else 2

    def level_size(self, level: int) -> Tuple[int, int]:
        return -(-self.height // (1 << level)), -(-self.width // (1 << level))

    @property
    def inputs(self) -> int:
        """Values per pixel that enter the synthesis network."""
        return self.maps * self.levels

    @property
    def outputs(self) -> int:
        """Values per pixel that the synthesis network's last layer gives (the planes, then any motion)."""
        return self.channels


@dataclass(frozen=True)
class KeyedGridConfig(LatentGridConfig):
    """A latent grid that also sees its clip's two decoded keyframes (``latent-grid-kf``)."""

    clip_len: int = 8               # keyframes at every clip_len-th frame (and the last), as D-NeRV (--clip-len)
    motion: bool = False            # the synthesis also outputs a motion field per keyframe and their blend
                                    # weight: it corrects the keyframes warped to the frame instead of their
                                    # plain blend (False: files written before this field existed)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.clip_len <= 64:
            raise ValueError("clip length must be in 2..64")

    @property
    def inputs(self) -> int:
        return self.maps * self.levels + 2 * self.channels     # + the keyframes' blend and their difference

    @property
    def outputs(self) -> int:
        return self.channels + (MOTION_OUTPUTS if self.motion else 0)


class LatentGrid(VideoModel):
    arch = "latent-grid"
    needs_keyframes = False
    clip_len = 1
    frames_apart = True

    def __init__(self, config: LatentGridConfig):
        super().__init__(config)
        c = config
        for level in range(c.levels):
            h, w = c.level_size(level)
            self.register_parameter(f"frame{level}", nn.Parameter(torch.zeros(c.frames, h, w)))
            self.register_parameter(f"group{level}", nn.Parameter(torch.zeros(c.groups + 1, h, w)))
            if c.still:
                self.register_parameter(f"still{level}", nn.Parameter(torch.zeros(1, h, w)))
        # per-pixel layers as Linear on (N, H, W, C): 2.2x faster than 1x1 convolutions on NCHW, forward
        # and backward, on this project's CPU (and the 3x3 refinement then runs channels-last, 3.3x)
        layers, cin = [], c.inputs
        for width in c.hidden:
            layers += [nn.Linear(cin, width), nn.ReLU()]
            cin = width
        layers.append(nn.Linear(cin, c.outputs))
        self.mlp = nn.Sequential(*layers)
        self._shared: Optional[Dict[Any, Any]] = None     # what decoding() keeps between calls
        self.refine = nn.ModuleList(nn.Sequential(nn.Conv2d(c.channels, c.channels, 3, padding=1), nn.ReLU(),
                                                  nn.Conv2d(c.channels, c.channels, 3, padding=1))
                                    for _ in range(c.refine))
        with torch.no_grad():   # refinement starts as the identity
            for blk in self.refine:
                blk[2].weight.mul_(0.1)
                blk[2].bias.zero_()

    def _positions(self, t: torch.Tensor) -> tuple:
        """Frame times -> (left frame, right frame, weight of right) and (group, weight of its end)."""
        c = self.config
        pos = (t.double() * c.frames).clamp(0, c.frames - 1)
        near = torch.round(pos)
        pos = torch.where((pos - near).abs() < 1e-3, near, pos)     # t = f / frames in float32: f exactly
        left = torch.floor(pos)
        frac = (pos - left).float()
        left = left.long()
        right = (left + 1).clamp(max=c.frames - 1)
        g = torch.div(left, c.group, rounding_mode="floor")
        start = g * c.group
        span = (torch.clamp(start + c.group, max=c.frames) - 1 - start).clamp_min(1)
        a = ((pos - start.double()) / span.double()).clamp(0, 1).float()
        return left, right, frac, g, a

    def latent_names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self.named_parameters() if name.startswith(LATENT_PREFIXES))

    def rate_rows(self, t: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The per-frame maps' rows that frames at times ``t`` read (their frame, and the next one where a
        time falls between two): about nine tenths of the latents are per-frame maps, and a step draws a
        few of a video's frames."""
        left, right, frac, _, _ = self._positions(t.reshape(-1))
        rows = torch.unique(torch.cat([left, right[frac > 0]]))
        return {f"frame{level}": rows for level in range(self.config.levels)}

    def _frame_maps(self, level: int, left: torch.Tensor, right: torch.Tensor, fw: torch.Tensor,
                    between: bool) -> torch.Tensor:
        """Level ``level``'s per-frame maps at the frames ``left`` (blended towards ``right`` by ``fw``)."""
        fm = getattr(self, f"frame{level}")
        z0 = fm.index_select(0, left)                  # index_select: a row-wise backward pass
        return z0 + fw * (fm.index_select(0, right) - z0) if between else z0

    def _low_res(self, t: torch.Tensor, between: bool) -> Iterator[torch.Tensor]:
        """Per level, the maps the frames ``t`` read at the level's own resolution: (N, maps, h, w) (their
        frame maps, their group's blend of its two boundary maps, the still maps)."""
        c = self.config
        left, right, frac, g, a = self._positions(t)
        fw, gw = frac[:, None, None], a[:, None, None]
        for level in range(c.levels):
            gm = getattr(self, f"group{level}")
            z0 = self._frame_maps(level, left, right, fw, between)
            g0 = gm.index_select(0, g)
            zs = [z0, g0 + gw * (gm.index_select(0, g + 1) - g0)]
            if c.still:
                zs.append(getattr(self, f"still{level}").expand_as(z0))
            yield torch.stack(zs, dim=1)

    def latents(self, t: torch.Tensor, between: bool = True) -> torch.Tensor:
        """(N,) times -> (N, maps x L, H, W): every level's maps at that time, upsampled to the frame.
        ``between=False`` promises whole frames (no blend with the next frame's maps: cheaper)."""
        c = self.config
        maps = [z if not level else F.interpolate(z, size=(c.height, c.width), mode=c.upsample, align_corners=False)
                for level, z in enumerate(self._low_res(t, between))]
        z = torch.cat(maps, dim=1)
        return z * c.gain if c.gain != 1.0 else z

    def _upsampled(self, low: torch.Tensor, level: int) -> torch.Tensor:
        """(h, w) or (N, h, w) maps of ``level`` -> (H, W) or (N, H, W): ``F.interpolate``'s weights as two small matrix
        products (:func:`resize_matrix`), 3-25x faster than ``F.interpolate`` on this project's CPU."""
        if not level:
            return low
        c = self.config
        rows = resize_matrix(low.shape[-2], c.height, c.upsample, low.device)
        cols = resize_matrix(low.shape[-1], c.width, c.upsample, low.device)
        if low.dim() == 2:
            return rows @ low @ cols.T
        n = low.shape[0]        # one product per map, of the same shape whatever n: a frame's values do not
        return torch.bmm(rows.expand(n, -1, -1), torch.bmm(low, cols.T.expand(n, -1, -1)))   # depend on its batch

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """The shared maps' first-layer terms (:meth:`_shared_term`) are computed once per span, not per call."""
        self._shared = {}
        try:
            yield
        finally:
            self._shared = None

    def _kept(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per :meth:`decoding` span under ``key``."""
        if self._shared is None:
            return make()
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def _shared_term(self, prefix: str, index: int) -> torch.Tensor:
        """What the maps ``prefix{l}[index]`` of every level (``group`` or ``still``) add to the first
        layer's pre-activation, (hidden, H x W): their columns of the first layer's weights, times the
        gain, times their upsampled values, summed over the levels."""
        def make() -> torch.Tensor:
            c = self.config
            first = self.mlp[0].weight
            term = None
            for level in range(c.levels):       # level by level: a (hidden, L) x (L, H x W) product is slow
                col = c.maps * level + LATENT_PREFIXES.index(prefix)
                up = self._upsampled(getattr(self, f"{prefix}{level}")[index], level).reshape(1, -1)
                w = first[:, col:col + 1] * c.gain
                term = w * up if term is None else term.addcmul_(w, up)
            return term
        return self._kept((prefix, index), make)

    def _group_terms(self, group: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(the first layer's pre-activation at the start of ``group`` from everything its frames share: the
        bias, the still maps and the group's start maps; what the group's end maps add minus the start's),
        each (hidden, H x W): a frame ``a`` of the way through the group starts from ``base + a step``."""
        def make() -> Tuple[torch.Tensor, torch.Tensor]:
            start = self._shared_term("group", group)
            base = start + self.mlp[0].bias[:, None]
            if self.config.still:
                base += self._shared_term("still", 0)
            return base, self._shared_term("group", group + 1) - start
        return self._kept(("terms", group), make)

    def _decode_pixels(self, t: torch.Tensor, k: int, fill: Optional[Callable[[torch.Tensor], None]],
                       between: bool) -> torch.Tensor:
        """The per-pixel network's output (N, outputs, H, W) at times ``t`` without gradients: the fit's
        values up to float rounding.

        The first layer is linear, so the maps that frames share go through it once per call instead of
        once per frame: the still maps' term (and the bias) once, each group boundary's term once, and a
        frame adds its group's two boundary terms blended by its position in the group (the blend of the
        upsampled maps times the weights is the weights times the upsampled blend).  What is left per frame
        is each level's frame map, upsampled, and the ``k`` inputs ``fill`` writes: 13 of the 27 first-layer inputs of a
        keyframe-conditioned QCIF model.  The inputs stay channels-first (each layer is one matrix product
        over a piece of pixel columns, with no transposition), the gain goes into the first layer's weights,
        and on a CPU the pixels go through the network in pieces of ``DECODE_PIECE`` pixels of one frame,
        whose activations stay in the cache, a piece of every frame in turn.  The later layers' biases ride
        in their products (a row of ones under each hidden layer's buffer), so no pass copies them."""
        if self._shared is None:        # a call on its own is a span of its own
            with self.decoding():
                return self._decode_pixels(t, k, fill, between)
        c = self.config
        levels, m = c.levels, c.maps
        n, hw = int(t.numel()), c.height * c.width
        left, right, frac, g, a = self._positions(t)
        z = torch.empty((n, levels + k, c.height, c.width), device=t.device)
        for level in range(levels):
            z[:, level] = self._upsampled(self._frame_maps(level, left, right, frac[:, None, None], between), level)
        if fill is not None:
            fill(z[:, levels:])
        linear = [mod for mod in self.mlp if isinstance(mod, nn.Linear)]
        first = linear[0].weight
        w_first = torch.cat([first[:, 0:m * levels:m] * c.gain, first[:, m * levels:]], dim=1)
        # the later layers' biases ride in their matrix products: each layer's input has a last row of ones
        w_more = [torch.cat([mod.weight, mod.bias[:, None]], dim=1) for mod in linear[1:]]
        widths = [int(mod.weight.shape[0]) for mod in linear[:-1]]
        frames, pixels = decode_pieces(z.device, n, hw)
        groups = g.tolist()
        flat = z.view(n, -1, hw)
        # the products run in float32 into their buffers; the output has the type autocast gives a product here
        out = torch.empty((n, c.outputs, hw), device=z.device, dtype=torch.mm(w_first[:1], w_first[:1].T).dtype)
        held: Dict[Tuple[int, int], List[torch.Tensor]] = {}

        def activations(f: int, pp: int) -> List[torch.Tensor]:
            """Per hidden layer, an (f, width + 1, pp) buffer whose last row is ones (reused piece after piece)."""
            if (f, pp) not in held:
                held[(f, pp)] = [torch.ones((f, width + 1, pp), device=z.device) for width in widths]
            return held[(f, pp)]

        spans = []
        for i in range(0, n, frames):
            # frame i's first layer starts from base + a_i step of its group (_group_terms); a piece within one
            # group (every piece on a CPU: one frame) broadcasts its group's terms, others stack them per frame
            terms = [self._group_terms(grp) for grp in dict.fromkeys(groups[i:i + frames])]
            if len(terms) == 1:
                base, step = (term[None] for term in terms[0])
            else:
                base, step = (torch.stack([self._group_terms(grp)[j] for grp in groups[i:i + frames]]) for j in (0, 1))
            spans.append((i, base, step, a[i:i + frames, None, None]))
        for p in range(0, hw, pixels):      # a piece of every frame in turn: a group's frames read the same
            for i, base, step, wa in spans:     # piece of its terms, from the cache (bikes' are 17 MB each)
                x = flat[i:i + frames, :, p:p + pixels]
                f, pp = int(x.shape[0]), int(x.shape[-1])
                acts = activations(f, pp)
                y = acts[0][:, :widths[0]]
                torch.addcmul(base[:, :, p:p + pp], wa, step[:, :, p:p + pp], out=y)
                y.baddbmm_(w_first.expand(f, -1, -1), x).clamp_min_(0.0)
                for j, w in enumerate(w_more):
                    if j + 1 < len(widths):
                        torch.bmm(w.expand(f, -1, -1), acts[j], out=acts[j + 1][:, :widths[j + 1]]).clamp_min_(0.0)
                    else:
                        out[i:i + frames, :, p:p + pp] = torch.bmm(w.expand(f, -1, -1), acts[j])
        return out.view(n, c.outputs, c.height, c.width)

    def _conditioning(self, keyframes: Optional[torch.Tensor], b: int, d: int, phase: float,
                      slots: torch.Tensor) -> Tuple[int, Optional[Callable[[torch.Tensor], None]], Any]:
        """(k, a function that writes k more per-pixel inputs of the synthesis into an (N, k, H, W) tensor or
        None, the picture its output corrects) for clip positions ``slots`` of ``d``-frame clips.  The decoder
        has them written straight into its input tensor (no temporary copies of full-size pictures)."""
        return 0, None, 0.5

    def _prediction(self, x: torch.Tensor, base: Any) -> Tuple[torch.Tensor, Any]:
        """(the planes the network corrects with, what it corrects): the network's output (N, outputs, H, W)
        and ``_conditioning``'s picture -> (N, C, H, W) and that picture."""
        return x, base

    def forward(self, t: torch.Tensor, keyframes: Optional[torch.Tensor] = None, phase: float = 0.0,
                slots: Optional[Sequence[int]] = None) -> torch.Tensor:
        """(B, D) times -> (B, D, C, H, W); with ``slots``, only those clip positions: (B, len(slots), C, H, W),
        each equal to the whole clip's output there (every frame is made on its own: ``frames_apart``)."""
        b, d = t.shape  # phase is already in t (frame-rate up-conversion blends the nearest frames' maps)
        c = self.config
        if t.is_meta:   # the decoder's shape check: the output's shape is the config's (and meta arithmetic
            return torch.empty((b, d, c.channels, c.height, c.width), device=t.device)   # imports torch._dynamo: 2 s)
        at = torch.arange(d, device=t.device) if slots is None else torch.as_tensor(slots, device=t.device)
        n = int(at.numel())
        if b * n == 0:
            return torch.zeros((b, n, c.channels, c.height, c.width), device=t.device)
        tn = t[:, at].reshape(b * n)
        k, fill, base = self._conditioning(keyframes, b, d, phase, at)
        if torch.is_grad_enabled():
            z = self.latents(tn, between=phase != 0.0).permute(0, 2, 3, 1)
            if fill is not None:
                more = torch.empty((b * n, k, c.height, c.width), device=t.device)
                fill(more)
                z = torch.cat([z, more.permute(0, 2, 3, 1).to(z.dtype)], dim=-1)
            x = self.mlp(z).permute(0, 3, 1, 2)     # NCHW shape, channels-last memory
        else:
            x = self._decode_pixels(tn, k, fill, between=phase != 0.0)
        x, base = self._prediction(x, base)
        if self.refine:     # the 3x3 refinement runs channels-last (the fit's layout): 1.7x faster on a CPU
            x = x.contiguous(memory_format=torch.channels_last)
        if torch.is_grad_enabled():
            for blk in self.refine:
                x = x + blk(x)
            x = straight_through_clamp(x + base)
        else:               # the decoder's x is its own tensor: the same sums in place, a plain clamp
            for blk in self.refine:
                x = _plus(x, blk(x))
            x = _plus(x, base).clamp_(0.0, 1.0)
        return x.reshape(b, n, c.channels, c.height, c.width)


class KeyedLatentGrid(LatentGrid):
    """Latent grids conditioned on decoded keyframes (D-NeRV's idea): the synthesis network also reads,
    per pixel, the clip's two keyframes blended linearly in time (``tau = j / D`` for frame ``j`` of a
    ``D``-frame clip) and their difference, and its output corrects that blend instead of a flat grey
    frame.  What the keyframes already show costs no latents.  With ``motion`` (the planner's default)
    the network also gives a displacement field per keyframe and a correction of the blend weight, and
    corrects the two keyframes warped to the frame (Cool-chic video's motion decoded from latents)."""

    arch = "latent-grid-kf"
    needs_keyframes = True

    def __init__(self, config: KeyedGridConfig):
        super().__init__(config)
        self.clip_len = config.clip_len
        with torch.no_grad():   # the untrained model outputs about the keyframes' blend (not exactly: a zero
            self.mlp[-1].weight.mul_(0.1)       # last layer would stop every gradient into the latents, and the
            self.mlp[-1].bias.zero_()           # rate term's first lambda comes from those gradients)
            self.mlp[-1].weight[config.channels:].zero_()   # no motion yet: exactly the blend's geometry

    def _conditioning(self, keyframes: Optional[torch.Tensor], b: int, d: int, phase: float,
                      slots: torch.Tensor) -> Tuple[Optional[torch.Tensor], Any]:
        c = self.config
        if keyframes is None or tuple(keyframes.shape) != (b, 2, c.channels, c.height, c.width):
            got = None if keyframes is None else tuple(keyframes.shape)
            raise ValueError(f"keyframes must be (B, 2, {c.channels}, {c.height}, {c.width}), got {got}")
        k0, k1 = keyframes[:, 0:1].float(), keyframes[:, 1:2].float()
        n = int(slots.numel())
        tau = ((slots.to(device=keyframes.device, dtype=torch.float32) + phase) / d).view(1, n, 1, 1, 1)
        ch = c.channels

        def fill(out: torch.Tensor) -> None:
            """(N, 2C, H, W) <- the blend minus 1/2, the difference (k0 + tau (k1 - k0) - 1/2 and k1 - k0,
            the same operations in the same order as written out, each straight into ``out``)."""
            o = out.unflatten(0, (b, n))
            blend, diff = o[:, :, :ch], o[:, :, ch:]
            torch.sub(k1.expand(-1, n, -1, -1, -1), k0, out=diff)
            torch.mul(tau, diff, out=blend)
            blend.add_(k0).sub_(0.5)

        if not c.motion:
            return 2 * ch, fill, (k0 + tau * (k1 - k0)).flatten(0, 1)             # (B*n, C, H, W)
        pairs = keyframes.float()[:, None].expand(-1, n, -1, -1, -1, -1).flatten(0, 2)   # (B*n*2, C, H, W)
        return 2 * ch, fill, (pairs, tau.expand(b, -1, -1, -1, -1).flatten(0, 1))

    def _prediction(self, x: torch.Tensor, base: Any) -> Tuple[torch.Tensor, Any]:
        """With ``motion``: each keyframe warped by its own displacement field (bilinear, borders repeated),
        blended with the weight ``tau`` plus a per-pixel correction; the fields and the correction are the
        network's last five outputs, zero at the start (then this is exactly the plain blend)."""
        c = self.config
        if not c.motion:
            return x, base
        pairs, tau = base
        n, _, h, w = x.shape
        m = x[:, c.channels:]
        if torch.is_grad_enabled():
            k = warp(pairs, m[:, :4].reshape(2 * n, 2, h, w)).view(n, 2, c.channels, h, w)   # both in one call
            return x[:, :c.channels], k[:, 0] + (tau + m[:, 4:5]) * (k[:, 1] - k[:, 0])
        # the decoder: the same function in fewer passes over full-size pictures (float rounding apart)
        k = warp(pairs, m[:, :4].unflatten(1, (2, 2))).view(n, 2, c.channels, h, w)
        return x[:, :c.channels], torch.lerp(k[:, 0], k[:, 1], m[:, 4:5] + tau)


def _plus(x: torch.Tensor, y: Any) -> torch.Tensor:
    """``x + y``, into ``x`` where that keeps the sum's type (``x`` is then overwritten)."""
    return x.add_(y) if torch.result_type(x, y) == x.dtype else x + y


def warp(pictures: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pictures sampled at each pixel plus ``MOTION_SCALE x flow`` pixels ((N, 2, H, W): x, y),
    bilinearly, the border repeated outside.  Without autograd ``flow`` may also come as (N / 2, 2, 2, H, W)
    (two fields per frame, any strides): the sampling grid is then one pass, ``centre + flow x scale``."""
    h, w = pictures.shape[-2:]
    if not torch.is_grad_enabled():
        centres, scale = _pixel_grid(h, w, pictures.device)
        grid = torch.addcmul(centres, flow.movedim(-3, -1), scale)      # (..., H, W, 2), contiguous
        return F.grid_sample(pictures, grid.view(-1, h, w, 2), mode="bilinear", padding_mode="border",
                             align_corners=False)
    xs = torch.arange(w, device=pictures.device, dtype=torch.float32) + 0.5       # pixel centres, in pixels
    ys = torch.arange(h, device=pictures.device, dtype=torch.float32)[:, None] + 0.5
    gx = (xs + MOTION_SCALE * flow[:, 0]) * (2.0 / w) - 1.0                        # grid_sample's [-1, 1]
    gy = (ys + MOTION_SCALE * flow[:, 1]) * (2.0 / h) - 1.0
    return F.grid_sample(pictures, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=False)


@functools.lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(every pixel's centre in ``grid_sample``'s [-1, 1] coordinates (H, W, 2), the [-1, 1] units of one unit
    of flow (2,)): :func:`warp`'s grid is ``centre + flow x scale`` (cached: never modify them in place)."""
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * (2.0 / w) - 1.0
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * (2.0 / h) - 1.0
    centres = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)], dim=-1)
    scale = torch.tensor([MOTION_SCALE * 2.0 / w, MOTION_SCALE * 2.0 / h])
    return centres.to(device), scale.to(device)


def decode_pieces(device: torch.device, frames: int, pixels: int) -> Tuple[int, int]:
    """(frames, pixels) per piece of the decoder's per-pixel network, for ``frames`` frames of ``pixels``
    pixels: on a CPU ``DECODE_PIECE`` pixels of one frame, whose activations stay in the cache; elsewhere
    the whole batch at once."""
    if device.type != "cpu":
        return frames, pixels
    return 1, min(pixels, DECODE_PIECE)


CUBIC_A = -0.75     # PyTorch's (and OpenCV's) bicubic convolution constant


def _cubic_near(d: np.ndarray) -> np.ndarray:
    """The cubic convolution kernel at distances |d| <= 1."""
    return ((CUBIC_A + 2) * d - (CUBIC_A + 3)) * d * d + 1


def _cubic_far(d: np.ndarray) -> np.ndarray:
    """The cubic convolution kernel at distances 1 < |d| < 2."""
    return ((CUBIC_A * d - 5 * CUBIC_A) * d + 8 * CUBIC_A) * d - 4 * CUBIC_A


@functools.lru_cache(maxsize=64)
def resize_matrix(size: int, out: int, mode: str, device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """(out, size) float32: ``F.interpolate``'s 1-D resampling from ``size`` to ``out`` samples
    (``align_corners=False``, indices clamped at the borders) as a matrix, so that a map ``Z`` (h, w)
    upsamples as ``R_h @ Z @ R_w.T`` (the same weights, summed in another order).

    Sample ``o`` reads around the source position ``(o + 1/2) size / out - 1/2``: bicubic with the
    four neighbours' cubic-convolution weights (``a = -3/4``), bilinear with the two nearest (the
    position clamped at 0).  The position is computed in float32 as PyTorch does, the weights from it in
    float64, then rounded once.  Cached per device (shared: never modify one in place)."""
    f32 = np.float32
    x = (f32(size) / f32(out) * (np.arange(out, dtype=f32) + f32(0.5)) - f32(0.5)).astype(np.float64)  # float32
    if mode == "bicubic":
        i = np.floor(x)
        f = x - i
        taps = [(i - 1, _cubic_far(f + 1)), (i, _cubic_near(f)), (i + 1, _cubic_near(1 - f)), (i + 2, _cubic_far(2 - f))]
    elif mode == "bilinear":
        x = np.maximum(x, 0.0)
        i = np.floor(x)
        taps = [(i, 1 - (x - i)), (np.where(i < size - 1, i + 1, i), x - i)]
    else:
        raise ValueError(f"unknown upsampling {mode!r}")
    r = np.zeros((out, size))
    rows = np.arange(out)
    for j, v in taps:       # a tap outside the map reads the border sample (indices clamped)
        np.add.at(r, (rows, np.clip(j, 0, size - 1).astype(np.int64)), v)
    return torch.from_numpy(r.astype(np.float32)).to(device)


def latent_grid_param_count(c: LatentGridConfig) -> int:
    maps = c.frames + c.groups + 1 + int(c.still)          # latent maps per level
    n = sum(maps * h * w for h, w in (c.level_size(lv) for lv in range(c.levels)))
    cin = c.inputs
    for width in c.hidden:
        n += cin * width + width
        cin = width
    n += cin * c.outputs + c.outputs
    return n + c.refine * 2 * (9 * c.channels * c.channels + c.channels)


def floor_size(c: LatentGridConfig) -> Tuple[int, int]:
    """(weights that are not latents, tensors): what the weights section holds at the least, every latent
    zero; the rate planner prices them (nervcodec.codec.plan)."""
    with torch.device("meta"):
        m = (KeyedLatentGrid if isinstance(c, KeyedGridConfig) else LatentGrid)(c)
    named = list(m.named_parameters())
    latent = set(m.latent_names())
    return sum(p.numel() for n, p in named if n not in latent), len(named)


def latent_levels(height: int, width: int) -> int:
    """Levels down to a coarsest map with at least MIN_SIDE latents along the shorter side."""
    side = min(height, width)
    levels = 1
    while levels < MAX_LEVELS and side / (1 << levels) >= MIN_SIDE:
        levels += 1
    return levels


def plan_latent_grid(height: int, width: int, channels: int, params: int, frames: int = 1,
                     group: Optional[int] = None, **options: Any) -> LatentGridConfig:
    """The latent-grid config for ``frames`` frames of ``height x width``.

    The parameter budget does not size this model: its latents follow from the video's
    size, and the rate term decides how many bits they get (most end up zero).  Options:
    ``hidden``, ``refine``, ``upsample``, ``gain``, ``still`` (stored in the config).  Unknown options are
    ignored, as by the other planners."""
    return _plan(LatentGridConfig, height, width, channels, frames, group, options)


def plan_keyed_grid(height: int, width: int, channels: int, params: int, frames: int = 1,
                    group: Optional[int] = None, clip_len: int = 8, **options: Any) -> KeyedGridConfig:
    """The ``latent-grid-kf`` config: :func:`plan_latent_grid`'s, with keyframes every ``clip_len`` frames.

    ``params``: how many weights the rate leaves room for at the bits a weight costs (4 with rate-aware
    fitting; 0: no budget, as with ``--lambda``).  Unless ``hidden`` is given, the synthesis is the widest of
    ``KEYED_WIDTHS`` whose weights are at most ``NETWORK_SHARE`` of them (the narrowest when none is; the
    widest without a budget), so that a small budget is not spent on the network before any latent."""
    options = {"motion": MOTION_DEFAULT, **options}

    def make(**more: Any) -> KeyedGridConfig:
        return _plan(KeyedGridConfig, height, width, channels, frames, group, {**options, **more},
                     clip_len=int(clip_len))

    if "hidden" in options:
        return make()
    for hidden in KEYED_WIDTHS if params > 0 else KEYED_WIDTHS[:1]:    # no budget: the widest
        config = make(hidden=hidden)
        if floor_size(config)[0] <= NETWORK_SHARE * params:
            break
    return config


def _plan(cls: type, height: int, width: int, channels: int, frames: int, group: Optional[int],
          options: Dict[str, Any], **more: Any) -> Any:
    g = DEFAULT_GROUP if group is None else int(group)
    if g < 1:
        raise ConfigError(f"--gop must be at least 1, got {g}")
    names = {f.name for f in dataclasses.fields(cls)} & {"hidden", "refine", "upsample", "gain", "still", "motion"}
    fixed = {k: options[k] for k in names if k in options}
    try:
        return cls(height=height, width=width, channels=channels, frames=max(int(frames), 1),
                   group=min(g, max(int(frames), 1)), levels=latent_levels(height, width), **fixed, **more)
    except ValueError as exc:
        raise ConfigError(f"invalid latent-grid settings: {exc}") from None


# gain: a frame's maps get a gradient only in the steps that draw it (8 of 48 frames on people), so
# under Adam they move gain x lr per step where they are used; 600 steps on people at 0.25 bpp gave
# PSNR-RGB 30.36 / 31.07 / 31.30 / 30.86 dB at gain 1 / 3 / 5 / 10 (single runs).  The still maps
# (one per level for the whole video): 30.36 dB with them, 28.11 without (gain 1).
# Fitting defaults: 8 frames per step at 1e-2 (Cool-chic's rate for latents and synthesis alike); on
# people_qcif_48f at 0.25 bpp, 600 steps: 8 frames gave +0.6 dB PSNR-RGB over 4 for 1.2x the time, 16
# another +0.1 dB for 2.6x.  The rate term is on from 10 % of the steps, with noise in place of rounding
# until 85 %.  Rounded weights from the rate term's start, which the keyed grids fit with, did worse here:
# people at 0.25 bpp, default effort, seed 0, 0.2499 bpp -> 32.68 dB PSNR-RGB against 0.2463 -> 33.15 dB
# with noise (one run each; docs/benchmarks.md, "Where a decode's time goes, D-NeRV beside both grids").
LATENT_GRID = register_model(ModelSpec(
    name="latent-grid", arch_id=3, cls=LatentGrid, config_cls=LatentGridConfig, plan=plan_latent_grid,
    batch=8, lr=1e-2, bits_per_param={}, rate_start=0.1, noise_until=0.85, check_coded=True, grouped=True,
    floor_size=floor_size,
    description="latent grids: per-frame and per-group multi-resolution latent maps, entropy-coded, "
                "upsampled and turned into pixels by a ~1.3k MAC/pixel synthesis network"))


# The same fit, but clips of clip_len frames and the keyframes' share of the budget from --keyframe-share.
# The clip length is chosen among D-NeRV's candidates by the same rule (nervcodec/codec/cliplen.py).
# A step draws the fewest clips whose loss holds two frames (step_frames): one clip at D = 4 and 8, two at
# D = 2, where a clip has one frame between its keyframes.  Before the fit skipped the keyframes' slots, one
# clip per step at any length: carphone_pristine at 0.2 bpp with D = 2, default effort, seed 0: 0.1921 bpp
# -> 36.61 dB PSNR-RGB in 743 s with one clip per step, 0.2000 bpp -> 36.83 dB in 1090 s with four: +0.22 dB
# for 4 % more rate and 47 % more time (docs/benchmarks.md, "Keyframe-conditioned latent grids").  Since the
# skip, a step synthesises only the frames in its loss, and two clips at D = 2 cost about what one did before
# (docs/benchmarks.md, "Two clips a step at D = 2").
# Rounded weights from the rate term's start (noise_until 0, where the plain grids keep noise until 85 %): with
# noise, a latent map below its step reaches the network as noise, the network learns to ignore it and the fit
# cannot bring it back; two clips a step with noise left the correction dead in two carphone 0.1 bpp fits of
# three.  Rounded, those latents are exact zeros and the fit recovers from the rate term's first drop.  Both
# together against one clip a step with noise until 85 %, default effort, three rates, seeds 0-2 (people 0-1):
# carphone_pristine -10.5 % BD-rate, +0.35 dB between the mean curves (run against run -14.0 to -5.7 %),
# people_qcif_48f -6.6 %, +0.21 dB (-10.2 to -3.2 %); 5-17 % (carphone) and 24-34 % (people) more fitting time
# (docs/benchmarks.md, "Rounding from the rate term's start, and two clips a step").
# Keyframe share 0.7 instead of D-NeRV's 0.6: at the end of a fit the latents' rate buys little distortion
# (a carphone fit over its budget by 11 % was trimmed to it, every step scaled by one factor, for 0.08 dB),
# while the keyframes, which every frame between them reads, buy much more.  Default effort, seed 0, on
# both dev clips at their middle rate: carphone 0.2 bpp 0.1921 -> 36.61 dB PSNR-RGB at 0.6, 0.1963 -> 36.86
# at 0.7; people 0.5 bpp 0.4999 -> 38.90 at 0.6, 0.4999 -> 39.23 at 0.7 (docs/benchmarks.md, "A larger
# keyframe share for the grids").  0.8 since 2026-12-06, with motion: against 0.7 at three rates and two seeds,
# carphone_pristine -5.7 / -3.4 % BD-rate (the mean curves -4.6 %), people_qcif_48f -1.3 / -0.3 % (at 0.25 and
# 0.5 bpp its keyframes are the ones 0.7 gives: the same files) (docs/benchmarks.md, "A larger keyframe share for
# the grids on carphone, and a wider synthesis not kept").
# Motion (MOTION_DEFAULT): the keyframes warped by fields the synthesis decodes from the latents instead of
# their plain blend.  Default effort, seed 0, share 0.7, against the plain blend: carphone_pristine -6.7 %
# BD-rate (+0.32 / +0.18 / +0.02 dB at 0.1 / 0.2 / 0.4 bpp), people_qcif_48f -2.2 % (+0.09 / +0.09 / -0.02 dB)
# (docs/benchmarks.md, "Motion-compensated keyframes for the grids").  MOTION_SCALE was not tuned.
KEYED_GRID = register_model(dataclasses.replace(
    LATENT_GRID, name="latent-grid-kf", arch_id=4, cls=KeyedLatentGrid, config_cls=KeyedGridConfig,
    plan=plan_keyed_grid, batch=1, step_frames=2, clip_lens=(8, 4, 2), keyframe_share=0.8, noise_until=0.0,
    description="latent grids conditioned on decoded keyframes: the synthesis network corrects the blend of "
                "each clip's two keyframes (coded as D-NeRV's)"))
