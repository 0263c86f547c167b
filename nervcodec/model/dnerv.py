"""D-NeRV (He et al., CVPR 2023): a clip of frames from its time and its two decoded keyframes.

NeRV maps a frame's time to the whole frame, so every pixel of content has to
live in the weights.  D-NeRV moves the content into the clip's two keyframes
(coded separately by an image codec) and lets the network learn only *how to
get from them to each frame*: flow to warp keyframe features, modulation of the
decoder by the warped features, and a temporal mixer across the clip.

Layout for a working size of grid * prod(factors) with n = len(factors) stages::

    t (B, D) -> PE -> per-frame MLP -> (fc_dim, grid)  --+
    keyframes (B, 2, C, h, w) -> normalise -> encoder ---+--> K_0 (enc_dim, grid), lerp by tau
                                  |                      |
                                  +-> K_1..K_{n-1} (enc_dim, each decoder scale), K_n = keyframe
    x_0 = InstanceNorm(cat[stem, K_0(tau)])
    for i in 0..n-1:
        F_i = (1-tau) * warp(K_i[start], flow_fwd_i(x_i)) + tau * warp(K_i[end], flow_bwd_i(x_i))
        x   = x_i * (1 + gamma_i(F_i)) + beta_i(F_i)                        (SAF)
        x   = GELU(PixelShuffle(conv3x3(x)))                                 (block)
        x_{i+1} = x + GTMLP_i(x)                                             (per-channel D x D mixing)
    F_n = the same warp and blend of the raw keyframes (full resolution)
    out = F_n + head(cat[x_n, F_n])          (normalised space) -> de-normalise -> clamp to [0, 1]

tau = j / D is the position of frame j in its clip (the start keyframe is at
tau = 0, the end keyframe, which is the next clip's first frame, at tau = 1).
``phase`` (0 <= phase < 1) moves every frame of the clip to tau = (j + phase) / D:
frames between the coded ones, for frame-rate up-conversion (the GTMLPs still mix
the D slots as if they were the clip's frames; t must carry the same shift).

Differences from the reference code (boheumd/D-NeRV), each on purpose:

* every width scales with the parameter budget (the reference's fixed
  64-channel encoder alone is 133k parameters, more than a whole small model
  here); see :func:`plan_dnerv` for the rules;
* K_0 is interpolated linearly in tau (the reference's trilinear
  ``F.interpolate`` 2 -> D copies the endpoints into the first and last two
  frames);
* the output is a *residual on the warped keyframe blend* F_n, so an untrained
  model already outputs the flow-free cross-fade of its keyframes instead of
  noise, and fitting starts from a useful PSNR;
* flow heads, the output head's last conv and the GTMLPs start (almost) at
  zero, so warps start as the identity and every block starts as a plain
  per-frame block (see ``_init_weights``);
* the output is clamped to [0, 1] with a straight-through gradient (the
  reference clamps, which stops the gradient of pixels that overshoot; a
  smooth squash slows learning near black and white, where video often sits);
  see :func:`straight_through_clamp`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import ModelSpec, VideoModel, register_model
from .geometry import plan_stages
from .layers import PositionalEncoding

__all__ = ["DNeRVConfig", "DNeRV", "plan_dnerv", "dnerv_param_count", "dnerv_widths", "warp",
           "straight_through_clamp"]


@dataclass(frozen=True)
class DNeRVConfig:
    """Everything needed to rebuild a D-NeRV network exactly (stored as JSON in the file)."""

    height: int                  # working size = grid * prod(factors)
    width: int
    channels: int                # 3 (Y, U, V at full resolution) or 1 (gray)
    grid_h: int
    grid_w: int
    factors: Tuple[int, ...]     # upsampling factor of each decoder stage
    fc_dim: int                  # channels of the stem's output grid (the size knob)
    stem_dim: int                # hidden width of the per-frame MLP stem
    enc_dim: int                 # channels of the keyframe encoder's features
    lower_width: int             # floor of the decoder widths
    clip_len: int = 8            # D: frames per clip (the GTMLPs' weights depend on it)
    expansion: int = 2           # first stage's output width = expansion * fc_dim
    embed_base: float = 1.25
    embed_levels: int = 40
    kf_mean: float = 0.45        # keyframes are normalised as (k - mean) / std inside the model
    kf_std: float = 0.25

    def __post_init__(self) -> None:
        s = math.prod(self.factors) if self.factors else 0
        if not self.factors or min(self.factors) < 1:
            raise ValueError("factors must be a non-empty tuple of positive ints")
        if self.grid_h * s != self.height or self.grid_w * s != self.width:
            raise ValueError("height/width must equal grid * prod(factors)")
        if self.channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        if min(self.fc_dim, self.stem_dim, self.enc_dim, self.lower_width, self.clip_len,
               self.expansion, self.embed_levels, self.grid_h, self.grid_w) < 1:
            raise ValueError("sizes must be positive")
        if not self.kf_std > 0:
            raise ValueError("kf_std must be positive")


def dnerv_widths(c: DNeRVConfig) -> List[int]:
    """Channels of the decoder features x_0 .. x_n (x_0 is the block 0 input, x_n the last output).

    As in the reference: x_0 = fc_dim + enc_dim (stem and K_0 concatenated),
    x_1 = expansion * fc_dim, then each stage divides by its factor with a
    floor of lower_width (the high-resolution stages are the costly ones in
    compute, and their width is what the floor protects).
    """
    widths = [c.fc_dim + c.enc_dim, c.expansion * c.fc_dim]
    for s in c.factors[1:]:
        widths.append(max(c.lower_width, (widths[-1] + s // 2) // s))
    return widths


def _flow_hidden(ch: int) -> int:
    """Hidden width of a flow head on ch channels (reference: ch / 4)."""
    return max(ch // 4, 2)


def _head_hidden(ch: int) -> int:
    """Hidden width of the output head on ch channels (reference: 35 -> 8)."""
    return max(ch // 4, 4)


# ----------------------------------------------------------------------------- building blocks


def warp(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``feat`` (N, C, H, W) by ``flow`` (N, 2, H, W) given in pixels (x, y).

    Output pixel p samples feat at p + flow(p) (bilinear, border padding,
    align_corners=True as in the reference).  The sampling grid is built in
    float32 whatever the autocast dtype: in bfloat16 a coordinate of a few
    hundred pixels would be off by whole pixels.
    """
    n, _, h, w = feat.shape
    # Non-finite flows (a diverging fit) must never reach grid_sample, whose backward pass
    # crashes the process on them.  Clamping to one frame size beyond the border changes
    # nothing for finite flows: border padding samples the edge either way, and the
    # gradient with respect to a coordinate outside the frame is zero either way.
    reach = float(max(h, w) + 1)
    flow = torch.nan_to_num(flow.float(), nan=0.0, posinf=reach, neginf=-reach).clamp(-reach, reach)
    ys = torch.arange(h, device=feat.device, dtype=torch.float32)
    xs = torch.arange(w, device=feat.device, dtype=torch.float32)
    gx = (xs.view(1, 1, w) + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys.view(1, h, 1) + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(feat.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def straight_through_clamp(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in the forward pass, identity gradient in the backward pass.

    A plain clamp gives zero gradient to a pixel that overshoots, so it can stay
    stuck at 0 or 1 while its target moves inside the range; the identity
    gradient lets the loss pull it back (for an overshoot the loss itself is
    zero or already points inward).  The decoder sees only the forward value.

    Measured against a smooth squash (a residual in atanh space, so that it too
    starts at the keyframe blend): 39.1 vs 38.0 dB after 300 steps on the first
    48 frames of people_qcif at 50k parameters (raw frames as keyframes, whose
    plain cross-fade scores 35.0 dB).
    """
    return x + (x.clamp(0.0, 1.0) - x).detach()


def _instance_norm_clip(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise x (B, D, C, h, w) per clip and channel over (D, h, w) (InstanceNorm3d, no affine)."""
    xf = x.float()
    mean = xf.mean(dim=(1, 3, 4), keepdim=True)
    var = xf.var(dim=(1, 3, 4), keepdim=True, unbiased=False)
    return ((xf - mean) * torch.rsqrt(var + eps)).to(x.dtype)


class GTMLP(nn.Module):
    """Per-channel temporal mixing across the D frames of a clip, as a residual: x + W_c x + b_c.

    Equivalent to the reference's grouped 1x1 Conv2d on (B, C*D, H, W) with
    groups = C: C matrices of D x D plus a bias of C x D.  Zero-initialised so
    that every block starts as a plain per-frame block.
    """

    def __init__(self, ch: int, clip_len: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(ch, clip_len, clip_len))
        self.bias = nn.Parameter(torch.zeros(ch, clip_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, D, C, H, W)
        mixed = torch.einsum("cde,bechw->bdchw", self.weight.to(x.dtype), x)
        return x + mixed + self.bias.t().to(x.dtype)[None, :, :, None, None]


class FlowHead(nn.Module):
    """Decoder features -> forward flow (channels 0-1) and backward flow (2-3), in pixels of that scale."""

    def __init__(self, ch: int):
        super().__init__()
        hid = _flow_hidden(ch)
        self.inp = nn.Conv2d(ch, hid, 1)
        self.out = nn.Conv2d(hid, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.inp(x)))


class KeyframeEncoder(nn.Module):
    """Shared encoder of both keyframes: a 3x3 conv, then one patchify conv (kernel = stride) per stage.

    The strides are the decoder factors reversed, so the features land exactly
    on the decoder's scales: returns [K_0 (grid), ..., K_{n-1}], coarse to fine.
    """

    def __init__(self, channels: int, enc_dim: int, factors: Tuple[int, ...]):
        super().__init__()
        self.stem = nn.Conv2d(channels, enc_dim, 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(enc_dim, enc_dim, s, stride=s) for s in reversed(factors))

    def forward(self, k: torch.Tensor) -> List[torch.Tensor]:
        x = F.gelu(self.stem(k))
        feats = []
        for conv in self.down:
            x = F.gelu(conv(x))
            feats.append(x)
        return feats[::-1]


class DNeRVBlock(nn.Module):
    """SAF modulation of the input by the warped keyframe features, then conv3x3 -> PixelShuffle -> GELU -> GTMLP."""

    def __init__(self, cin: int, cout: int, factor: int, enc_dim: int, clip_len: int):
        super().__init__()
        self.saf = nn.Conv2d(enc_dim, 2 * cin, 1)
        self.conv = nn.Conv2d(cin, cout * factor * factor, 3, padding=1)
        self.shuffle = nn.PixelShuffle(factor)
        self.gtmlp = GTMLP(cout, clip_len)

    def forward(self, x: torch.Tensor, fused: torch.Tensor, b: int) -> torch.Tensor:
        # x: (B*D, Cin, h, w); fused: (B*D, enc_dim, h, w)
        gamma, beta = self.saf(fused).chunk(2, dim=1)
        x = x * (1 + gamma) + beta
        x = F.gelu(self.shuffle(self.conv(x)))
        x = self.gtmlp(x.unflatten(0, (b, -1)))
        return x.flatten(0, 1)


# ----------------------------------------------------------------------------- the model


class DNeRV(VideoModel):
    """D-NeRV: (t, keyframes) -> clip.  See the module docstring for the layout."""

    arch = "dnerv"
    needs_keyframes = True

    def __init__(self, config: DNeRVConfig):
        super().__init__(config)
        c = config
        self.clip_len = c.clip_len
        widths = dnerv_widths(c)
        grid = c.grid_h * c.grid_w
        self.pe = PositionalEncoding(c.embed_base, c.embed_levels)
        self.stem = nn.Sequential(
            nn.Linear(self.pe.dim, c.stem_dim), nn.GELU(),
            nn.Linear(c.stem_dim, c.fc_dim * grid), nn.GELU(),
        )
        self.encoder = KeyframeEncoder(c.channels, c.enc_dim, c.factors)
        self.flows = nn.ModuleList(FlowHead(w) for w in widths)
        self.blocks = nn.ModuleList(
            DNeRVBlock(widths[i], widths[i + 1], s, c.enc_dim, c.clip_len) for i, s in enumerate(c.factors))
        hid = _head_hidden(widths[-1] + c.channels)
        self.head = nn.Sequential(nn.Conv2d(widths[-1] + c.channels, hid, 1), nn.GELU(),
                                  nn.Conv2d(hid, c.channels, 3, padding=1))
        self._init_weights()

    def _init_weights(self) -> None:
        """Why each choice: fitting should start from the keyframe cross-fade and improve on it.

        * block convs: xavier_uniform, zero bias (the reference);
        * flow heads' last conv: weights scaled to 1% of PyTorch's default, zero
          bias, so every warp starts within ~0.01 px of the identity; not exactly
          zero, so the heads' first convs get a gradient from the first step;
        * output head's last conv: the same, so the output starts as the warped
          keyframe blend F_n plus a tiny residual;
        * GTMLP: zero (identity); everything else PyTorch's default.
        """
        for blk in self.blocks:
            nn.init.xavier_uniform_(blk.conv.weight)
            nn.init.zeros_(blk.conv.bias)
        last_convs = [fh.out for fh in self.flows] + [self.head[-1]]
        with torch.no_grad():
            for conv in last_convs:
                conv.weight.mul_(0.01)
                conv.bias.zero_()

    def _fuse(self, i: int, x: torch.Tensor, keys: torch.Tensor, tau: torch.Tensor, b: int) -> torch.Tensor:
        """Warp the start/end keyframe features by the flows predicted from x, blend by tau.

        x: (B*D, C_i, h, w); keys: (B*2, E, h, w); tau: (B*D, 1, 1, 1).  One
        grid_sample call warps both keyframes for every frame of every clip.
        """
        bd = x.shape[0]
        d = bd // b
        flow = self.flows[i](x)                                            # (B*D, 4, h, w)
        keys = keys.unflatten(0, (b, 2))                                   # (B, 2, E, h, w)
        start = keys[:, 0:1].expand(-1, d, -1, -1, -1).flatten(0, 1)
        end = keys[:, 1:2].expand(-1, d, -1, -1, -1).flatten(0, 1)
        warped = warp(torch.cat([start, end]), torch.cat([flow[:, 0:2], flow[:, 2:4]]))
        w_start, w_end = warped[:bd], warped[bd:]
        return (w_start + tau * (w_end - w_start)).to(x.dtype)

    def forward(self, t: torch.Tensor, keyframes: Optional[torch.Tensor] = None, phase: float = 0.0) -> torch.Tensor:
        c = self.config
        if keyframes is None:
            raise ValueError("D-NeRV needs the clip's keyframes")
        b, d = t.shape
        if d != c.clip_len:
            raise ValueError(f"D-NeRV was built for clips of {c.clip_len} frames, got {d}")
        if tuple(keyframes.shape) != (b, 2, c.channels, c.height, c.width):
            raise ValueError(f"keyframes must be (B, 2, {c.channels}, {c.height}, {c.width}), "
                             f"got {tuple(keyframes.shape)}")
        kf = ((keyframes.float() - c.kf_mean) / c.kf_std).flatten(0, 1)   # (B*2, C, h, w)
        feats = self.encoder(kf)
        tau = (torch.arange(d, device=t.device, dtype=torch.float32) + phase) / d
        tau_bd = tau.repeat(b).view(b * d, 1, 1, 1)

        # stem: per-frame MLP on the time encoding, then K_0 interpolated in tau
        x = self.stem(self.pe(t)).view(b, d, c.fc_dim, c.grid_h, c.grid_w)
        k0 = feats[0].unflatten(0, (b, 2))
        k0 = k0[:, 0:1] + tau.view(1, d, 1, 1, 1) * (k0[:, 1:2] - k0[:, 0:1])
        x = torch.cat([x, k0.to(x.dtype)], dim=2)
        x = _instance_norm_clip(x).flatten(0, 1)                             # (B*D, C_0, gh, gw)

        for i, blk in enumerate(self.blocks):
            fused = self._fuse(i, x, feats[i], tau_bd, b)
            x = blk(x, fused, b)
        base = self._fuse(len(self.blocks), x, kf, tau_bd, b)               # warped keyframe blend
        out = base + self.head(torch.cat([x, base.to(x.dtype)], dim=1)).float()
        out = straight_through_clamp(out * c.kf_std + c.kf_mean)
        return out.view(b, d, c.channels, c.height, c.width)


# ----------------------------------------------------------------------------- size


def dnerv_param_count(c: DNeRVConfig) -> int:
    """Number of parameters of ``DNeRV(c)``, without building it (the planner calls this often)."""
    widths = dnerv_widths(c)
    grid = c.grid_h * c.grid_w
    e, ch, d = c.enc_dim, c.channels, c.clip_len
    n = 2 * c.embed_levels * c.stem_dim + c.stem_dim                      # stem
    n += c.stem_dim * c.fc_dim * grid + c.fc_dim * grid
    n += 9 * ch * e + e                                                  # encoder
    n += sum(e * e * s * s + e for s in c.factors)
    for w in widths:                                                     # flow heads
        h = _flow_hidden(w)
        n += w * h + h + 9 * h * 4 + 4
    for i, s in enumerate(c.factors):                                    # blocks
        cin, cout = widths[i], widths[i + 1]
        n += e * 2 * cin + 2 * cin                                       # SAF
        n += 9 * cin * cout * s * s + cout * s * s                       # conv
        n += cout * d * d + cout * d                                     # GTMLP
    cin = widths[-1] + ch                                                # output head
    h = _head_hidden(cin)
    n += cin * h + h + 9 * h * ch + ch
    return n


# Width rules: fc_dim is the one size knob, the rest follow it.  The reference
# (fc_dim 107..382) uses enc_dim 64, stem 512 and lower_width 32 throughout; at
# our budgets (down to ~20k parameters) those would exceed the whole model, so
# each follows fc_dim up to the reference's value:
#   enc_dim     = clamp(ceil(fc_dim / 2), 4, 64)   keyframe features carry the content: kept generous
#   lower_width = clamp(round(fc_dim / 6), 6, 32)  (198 / 6 = 33 ~ the reference's 32)
#   stem_dim    ~ clamp(round(2.5 * fc_dim), 8, 512) (198 * 2.5 = 495 ~ 512); the planner moves it
#                 within [1/2, 2] x this rule to fill the budget between two fc_dim steps.
#                 On a 9x11 grid the stem is about half of a 50k model; spending that on fc_dim
#                 instead (stem 5, fc 13) fitted worse (38.2 vs 39.1 dB, the people_qcif test in
#                 straight_through_clamp's docstring).
# Flow heads (ch / 4) and the output head follow the decoder widths.
_ENC_MIN, _ENC_MAX = 4, 64
_LW_MIN, _LW_MAX = 6, 32
_STEM_MIN, _STEM_MAX = 8, 512


def _enc_rule(fc: int) -> int:
    return min(max(-(-fc // 2), _ENC_MIN), _ENC_MAX)


def _lower_width_rule(fc: int) -> int:
    return min(max(int(round(fc / 6)), _LW_MIN), _LW_MAX)


def _stem_rule(fc: int) -> int:
    return min(max(int(round(2.5 * fc)), _STEM_MIN), _STEM_MAX)


def plan_dnerv(height: int, width: int, channels: int, params: int, clip_len: int = 8,
               **options: Any) -> DNeRVConfig:
    """The D-NeRV config of about ``params`` parameters (encoder included) for frames of ``height x width``.

    Searches fc_dim; for each, the stem width (whose count is linear) is solved
    to fill the rest of the budget, clamped to [1/2, 2] x its rule.  Among the
    configs within ``tolerance`` (default 1%) of the budget the one whose stem
    is closest to its rule wins; otherwise the closest count.  Options:
    expansion, embed_base, embed_levels, kf_mean, kf_std (stored in the
    config), tolerance.  Unknown options (e.g. NeRV-only ones) are ignored so
    that callers can pass one option set to every planner.
    """
    plan = plan_stages(height, width)
    tolerance = float(options.get("tolerance", 0.01))
    fixed = {k: options[k] for k in ("expansion", "embed_base", "embed_levels", "kf_mean", "kf_std")
             if k in options}
    if params < 1:
        raise ConfigError(f"a D-NeRV model needs a positive parameter budget, asked for {params}")

    def config(fc: int, stem: int) -> DNeRVConfig:
        return DNeRVConfig(height=plan.out_h, width=plan.out_w, channels=channels, grid_h=plan.grid_h,
                           grid_w=plan.grid_w, factors=plan.factors, fc_dim=fc, stem_dim=stem,
                           enc_dim=_enc_rule(fc), lower_width=_lower_width_rule(fc), clip_len=clip_len,
                           **fixed)

    try:
        config(1, _STEM_MIN)
    except ValueError as exc:
        raise ConfigError(f"invalid D-NeRV settings: {exc}") from None

    best: Optional[Tuple[Tuple[float, float], DNeRVConfig]] = None
    for fc in range(1, 8193):
        rule = _stem_rule(fc)
        lo, hi = max(_STEM_MIN // 2, rule // 2), rule * 2
        n_lo = dnerv_param_count(config(fc, lo))
        if n_lo > params * (1 + tolerance) and best is not None and best[0][0] == 0.0:
            break
        if n_lo > params * 1.5:
            break
        per_unit = dnerv_param_count(config(fc, lo + 1)) - n_lo
        stem = min(max(lo + int(round((params - n_lo) / per_unit)), lo), hi)
        cfg = config(fc, stem)
        err = abs(dnerv_param_count(cfg) - params) / params
        key = (0.0 if err <= tolerance else err, abs(math.log(stem / rule)))
        if best is None or key < best[0]:
            best = (key, cfg)
    # tiny budgets cannot always be met within 3%: accept the closest model within 15%
    if best is None or abs(dnerv_param_count(best[1]) - params) > 0.15 * params:
        closest = dnerv_param_count(best[1] if best is not None else config(1, _STEM_MIN // 2))
        raise ConfigError(f"no D-NeRV model of {width}x{height} has about {params} parameters "
                          f"(closest: {closest})")
    return best[1]


# Fitting defaults: 1 clip per step at a peak learning rate of 4e-3 (+0.74 dB PSNR-RGB over 2e-3 at
# 0.5 bpp on people).  Under a budget of optimizer steps, one clip per step costs 0.12-0.13 s against
# 0.20-0.24 s for two on this project's 2-core CPU, and at equal time it fitted better: people 0.5 bpp
# 36.39 dB (2200 steps, 282 s) against 36.27 dB (two clips, 1200 steps, 251 s), carphone 0.2 bpp 33.34
# against 33.03 dB (289 and 284 s); docs/benchmarks.md, "Effort presets".  (Under the old epoch
# budget, 150 epochs with 8-bit weights, one clip per step had lost 0.5 dB of luma on people.)  Its
# many small tensors code less well than NeRV's: 7.6 bits per 8-bit weight, 6.6 at 7, 5.6 at 6.
DNERV = register_model(ModelSpec(
    name="dnerv", arch_id=2, cls=DNeRV, config_cls=DNeRVConfig, plan=plan_dnerv,
    batch=1, lr=4e-3, bits_per_param={8: 7.6, 7: 6.6, 6: 5.6}, clip_lens=(8, 4, 2),
    description="D-NeRV: frame time + the clip's two keyframes -> flow-warped, SAF-modulated "
                "upsampling conv blocks with temporal mixing"))
