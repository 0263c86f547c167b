"""Fitting and decoding speed: nervcodec's loop against a plain fp32 eager loop.

In one run, the same model (same initial weights) and the same data are fitted by

  (a) a reference-style loop, written the way the NeRV/D-NeRV reference code does it:
      frames kept on the host as float tensors, one frame per step (batch 1), copied to
      the device every step, fp32, and the loss read back with ``.item()`` every step;
  (b) ``nervcodec.fit.fit``: frames resident on the device as integers, converted per
      batch, bf16 autocast and a fused optimizer on CUDA, no per-step host sync.

It reports frame-steps per second for both and their ratio, the PSNR after the same
number of epochs, decode frames per second at the clip's resolution, and model FLOP
utilisation (training FLOPs = 3 x the forward FLOPs counted by torch's FlopCounterMode)
against the device's peak: the vendor's dense figure on known GPUs, and on a CPU the
measured throughput of a large fp32 matrix multiply (so the CPU figure is "fraction of
what this CPU's GEMM reaches", stated as such).

    python benchmarks/speed.py CLIP [--model nerv|dnerv|latent-grid] [--params N] [--epochs E]
                               [--frames N] [--device cpu|cuda] [--nchw] [--json]

Decoding alone, of files already written (any model; the whole file to y4m, best of 3 runs, with
the synthesis network's multiply-adds per pixel as FlopCounterMode counts them: convolutions and
matrix products, not the upsampling).  Where the time goes: the seconds of the best decode spent inside
the model's forward calls (the synthesis), and, timed apart, the keyframes' decode (the ffmpeg process
and the chroma upsampling) and the weights section's (entropy decoding and building the network); in a
decode those two run side by side, so the parts do not add up to the whole:

    python benchmarks/speed.py --decode A.nerv [B.nerv ...] [--device cpu|cuda] [--batch N] [--json]

Entropy coding alone, of files already written: the whole weights section decoded to its symbols, and
the latent maps (3-D tensors of a grid model) coded again as the encoder codes them (best of 3 each):

    python benchmarks/speed.py --entropy A.nerv [B.nerv ...] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:        # the sibling scripts (ab_decode's clock)
    sys.path.insert(0, HERE)
from nervcodec.alloc import kept as alloc_kept, keep_freed_memory
from nervcodec.codec.fitting import build_fit_data
from nervcodec.codec.layout import plan_layout
from nervcodec.codec.synthesis import synthesize
from nervcodec.codec.tiles import upsample_chroma
from nervcodec.device import resolve_device
from nervcodec.fit import FitConfig, FitData, fit
from nervcodec.fit.data import PLANE_WEIGHTS
from nervcodec.model.planes import split_planes
from nervcodec.fit.fit import lr_factor
from nervcodec.io import read_video
from nervcodec.model.base import model_spec, model_spec_by_id

# Dense (no sparsity) peaks, FLOP/s: (bf16 tensor, fp32)
GPU_PEAKS = {"H100": (989e12, 67e12), "H200": (989e12, 67e12), "A100": (312e12, 19.5e12),
             "L4": (121e12, 30e12), "RTX 4090": (165e12, 82e12)}


def cpu_peak(seconds: float = 2.0) -> float:
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t0)


def device_peak(device: torch.device, bf16: bool) -> tuple:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (p16, p32) in GPU_PEAKS.items():
            if key in name:
                return (p16 if bf16 else p32), f"{name} dense {'bf16' if bf16 else 'fp32'} spec"
        return float("nan"), f"{name} (peak unknown)"
    return cpu_peak(), "measured fp32 GEMM of this CPU"


def forward_flops(model, data: FitData, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    idx = torch.arange(min(2, data.num_items), device=device)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(data.t[idx], data.keyframes_float(idx))
    per_item = fc.get_total_flops() / len(idx)
    return per_item / data.clip_len  # per frame


def build(clip: str, model_name: str, params: int, frames: int | None, clip_len: int):
    info, fr = read_video(clip)
    if frames:
        fr = fr[:frames]
        info = info.with_frames(fr.num_frames)
    spec = model_spec(model_name)
    dnerv = spec.cls.needs_keyframes
    layout = plan_layout([info], clip_len if dnerv else 1, "video" if dnerv else "global", allow_patches=dnerv)
    cfg = spec.plan(layout.patch_h, layout.patch_w, info.pix_fmt.num_planes, params, clip_len=clip_len,
                    frames=info.num_frames)
    items = layout.items([info])
    dec = _raw_keyframes(info, layout, fr.planes) if dnerv else None
    data = build_fit_data([fr], [info], layout, items, int(cfg.height), int(cfg.width), dec)
    return info, layout, spec, cfg, data, items


def eager_reference(model, data: FitData, epochs: int, lr: float, device, seed: int) -> tuple:
    """(a): the reference implementations' style, batch 1 and a host copy plus .item() per step."""
    torch.manual_seed(seed)
    model.to(device).train()
    host_y = [data.y[i].float() / data.max_value for i in range(data.num_items)]
    host_c = [data.c[i].float() / data.max_value for i in range(data.num_items)] if data.c is not None else None
    host_k = [data.keyframes[i].float() / data.max_value for i in range(data.num_items)] \
        if data.keyframes is not None else None
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    total = epochs * data.num_items
    step, losses = 0, []
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in torch.randperm(data.num_items).tolist():
            for g in opt.param_groups:
                g["lr"] = lr * lr_factor(step, total, 0.2)
            t = data.t[i:i + 1].to(device)
            kf = host_k[i][None].to(device) if host_k is not None else None
            out = model(t, kf)
            py, pc = split_planes(out, data.chroma_shift)
            mask = data.mask[i:i + 1].to(device)
            err = [((py - host_y[i][None].to(device)).square().mean(dim=(-1, -2)) * mask).sum() * PLANE_WEIGHTS[0]]
            if pc is not None:
                tc = host_c[i][None].to(device)
                err.append(((pc[:, :, 0] - tc[:, :, 0]).square().mean(dim=(-1, -2)) * mask).sum() * PLANE_WEIGHTS[1])
                err.append(((pc[:, :, 1] - tc[:, :, 1]).square().mean(dim=(-1, -2)) * mask).sum() * PLANE_WEIGHTS[2])
            loss = sum(err) / (sum(PLANE_WEIGHTS[:len(err)]) * mask.sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, step


def psnr_of(model, layout, info, items, fr_planes, device) -> float:
    from nervcodec.codec.quality import FrameScores
    s = FrameScores(info.pix_fmt)
    for _, f, planes in synthesize(model, layout, [info], items, device, batch=8,
                                   keyframes=_keyframe_source(model, info, layout, fr_planes)):
        s.add([p[f] for p in fr_planes], planes)
    return s.psnr_yuv


def _raw_keyframes(info, layout, fr_planes) -> dict:
    """The source frames at the keyframe positions, uncoded: speed does not depend on how they were coded."""
    from nervcodec.io.video import Frames
    full = upsample_chroma(Frames(tuple(fr_planes), info.pix_fmt))
    return {(0, f): full[f] for f in layout.keyframe_indices(info, 0)}


def _keyframe_source(model, info, layout, fr_planes):
    """What :func:`synthesize` takes as ``keyframes``: None for NeRV, else a lookup of the raw keyframes."""
    if not model.needs_keyframes:
        return None
    dec = _raw_keyframes(info, layout, fr_planes)
    return lambda items: dec


def decode_speed(paths, device_name: str, batch: int = 8) -> list:
    """Seconds to decode each file whole (best of 3, ``batch`` frames per synthesis call), frames per
    second, and MACs per pixel."""
    import tempfile
    from torch.utils.flop_counter import FlopCounterMode
    import nervcodec
    from nervcodec.codec import decode
    from nervcodec.codec.decode import load_model
    from nervcodec.container import read_file
    from ab_decode import forward_clock
    rows = []
    for path in paths:
        nf = read_file(path)
        model, layout = load_model(nf)
        v = nf.header.videos[0]
        t = torch.from_numpy(layout.times(list(nf.header.videos), layout.items(nf.header.videos)[:1]))
        kf = None
        if model.needs_keyframes:
            kf = torch.zeros(1, 2, model.config.channels, *model.out_size)
        # the network's multiply-adds, counted on the fit's path (autograd on): the grids' decoder upsamples
        # by matrix products, which the counter would add, while the fit's F.interpolate is not counted
        with torch.enable_grad(), FlopCounterMode(display=False) as fc:
            model.eval()(t, kf)
        macs = fc.get_total_flops() / 2 / (t.numel() * model.out_size[0] * model.out_size[1])
        best, synth = math.inf, math.inf
        with tempfile.TemporaryDirectory() as d:
            for k in range(3):
                with forward_clock(nervcodec) as spent:
                    t0 = time.perf_counter()
                    res = decode(path, Path(d) / f"out{k}.y4m", device=device_name, batch=batch)
                    took = time.perf_counter() - t0
                if took < best:
                    best, synth = took, spent[0]
        rows.append({"file": str(path), "model": model_spec_by_id(nf.header.arch_id).name,
                     "frames": res.frames, "size": f"{v.width}x{v.height}", "bytes": nf.size,
                     "decode_seconds": best, "fps": res.frames / best, "macs_per_pixel": macs,
                     "keyframe_seconds": keyframe_seconds(nf, layout) if model.needs_keyframes else 0.0,
                     "weights_seconds": weights_seconds(nf), "synthesis_seconds": synth,
                     "device": device_name, "device_name": _device_name(device_name), "batch": batch,
                     "cpu_threads": torch.get_num_threads(), "freed_memory_kept": alloc_kept()})
    return rows


def _device_name(device_name: str) -> str:
    dev = resolve_device(device_name)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()


def best_of(fn, runs: int = 3) -> tuple:
    """The shortest of ``runs`` timed calls of ``fn()``, in seconds, and what the last call returned."""
    best, value = math.inf, None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def entropy_speed(paths) -> list:
    """Seconds to entropy-decode each file's weights section and to code its latent maps again (best of 3)."""
    from nervcodec.codec.decode import meta_network
    from nervcodec.container import SECTION_WEIGHTS, read_file
    from nervcodec.container.weights import quantized_tensors
    from nervcodec.entropy import encode_symbols
    from nervcodec.model.grid import LATENT_PREFIXES
    rows = []
    for path in paths:
        nf = read_file(path)
        template = meta_network(nf).state_dict()
        data = nf.section(SECTION_WEIGHTS)
        dec, q = best_of(lambda: quantized_tensors(data, template, nf.version[0], nf.header.quant_bits))
        latents = [qt.symbols for name, qt in q if name.startswith(LATENT_PREFIXES) and qt.symbols.ndim == 3]
        enc, coded = best_of(lambda: sum(len(encode_symbols(s, signed=True)) for s in latents)) if latents else (0.0, 0)
        rows.append({"file": str(path), "model": model_spec_by_id(nf.header.arch_id).name,
                     "weights_bytes": len(data), "symbols": int(sum(qt.symbols.size for _, qt in q)),
                     "decode_seconds": dec, "latent_maps": len(latents), "latent_bytes": coded,
                     "latent_encode_seconds": enc})
    return rows


def weights_seconds(nf) -> float:
    """Seconds to entropy-decode a file's weights section and build its network from it (best of 3):
    the decoder's :func:`~nervcodec.codec.decode.build_network`, which a decode runs while the keyframes'
    ffmpeg process works beside it (the file's checks before it are not timed)."""
    from nervcodec.codec.decode import build_network, check_model
    from nervcodec.container import SECTION_WEIGHTS
    spec, config, _ = check_model(nf)
    return best_of(lambda: build_network(spec, config, nf.section(SECTION_WEIGHTS), nf.version[0],
                                         nf.header.quant_bits))[0]


def keyframe_seconds(nf, layout) -> float:
    """Seconds to decode every keyframe of a file (best of 3): the part of its decoding that is the
    keyframe codec's (the external decoder and the chroma upsampling), not the synthesis network's."""
    from nervcodec.codec.keyframes import KeyframeReader
    from nervcodec.container import SECTION_KEYFRAMES
    videos = list(nf.header.videos)
    items = layout.items(videos)
    return best_of(lambda: KeyframeReader(nf.section(SECTION_KEYFRAMES), videos, layout).source(items))[0]


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "--default-malloc" in argv:      # measure with glibc's defaults instead of what the CLI sets
        argv = [a for a in argv if a != "--default-malloc"]
    else:
        keep_freed_memory()             # as the CLI does (nervcodec/alloc.py)
    modes = {"--decode": ("decoding speed of .nerv files", lambda a: decode_speed(a.files, a.device, a.batch), lambda r: (
                 f"{r['file']}: {r['frames']} frames {r['size']}, {r['bytes']} bytes: decoded in "
                 f"{r['decode_seconds']:.2f} s ({r['fps']:.1f} fps on {r['device']}, batch {r['batch']}, "
                 f"{r['cpu_threads']} threads), "
                 f"{r['macs_per_pixel']:.0f} MACs/pixel; of it the synthesis {r['synthesis_seconds']:.3f} s; "
                 f"alone, the keyframes {r['keyframe_seconds']:.3f} s and the weights section "
                 f"{r['weights_seconds']:.3f} s")),
             "--entropy": ("entropy coding speed of .nerv files", lambda a: entropy_speed(a.files), lambda r: (
                 f"{r['file']}: weights section of {r['weights_bytes']} bytes ({r['symbols']} symbols) decoded in "
                 f"{r['decode_seconds']:.3f} s; its {r['latent_maps']} latent maps coded again in "
                 f"{r['latent_encode_seconds']:.3f} s ({r['latent_bytes']} bytes)"))}
    for flag, (what, measure, line) in modes.items():
        if flag in argv:    # a measurement of files already written
            fp = argparse.ArgumentParser(description=what)
            fp.add_argument(flag, dest="files", nargs="+", required=True)
            fp.add_argument("--device", default="cpu")
            fp.add_argument("--batch", type=int, default=8, help="--decode: frames per synthesis call (decode's --batch)")
            fp.add_argument("--json", action="store_true")
            a = fp.parse_args(argv)
            rows = measure(a)
            print(json.dumps(rows, indent=2) if a.json else "\n".join(line(r) for r in rows))
            return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip")
    ap.add_argument("--model", default="nerv", choices=["nerv", "dnerv", "latent-grid"])
    ap.add_argument("--params", type=int, default=150_000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nchw", action="store_true",
                    help="fit in the NCHW layout (the CPU default before channels-last was measured and adopted)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    info, layout, spec, cfg, data, items = build(args.clip, args.model, args.params, args.frames, 8)
    _, fr = read_video(args.clip)
    fr_planes = [p[:info.num_frames] for p in fr.planes]
    lr = spec.lr
    batch = args.batch or spec.batch
    frames_per_item = float(data.mask.sum()) / data.num_items

    torch.manual_seed(args.seed)
    init = spec.cls(cfg).state_dict()
    ref_model = spec.cls(cfg)
    ref_model.load_state_dict(init)
    ref_s, ref_steps = eager_reference(ref_model, data, args.epochs, lr, device, args.seed)
    ref_psnr = psnr_of(ref_model, layout, info, items, fr_planes, device)

    ours = spec.cls(cfg)
    ours.load_state_dict(init)
    fres = fit(ours, data, FitConfig(epochs=args.epochs, batch=batch, lr=lr, seed=args.seed,
                                     channels_last=False if args.nchw else None), device)
    our_psnr = psnr_of(ours, layout, info, items, fr_planes, device)

    frame_steps = args.epochs * data.num_items * frames_per_item
    ref_fps, our_fps = frame_steps / ref_s, frame_steps / fres.seconds
    # decode speed at the clip's resolution, whole clip, batched
    t0 = time.perf_counter()
    n = sum(1 for _ in synthesize(ours, layout, [info], items, device, batch=max(batch, 8),
                                  keyframes=_keyframe_source(ours, info, layout, fr_planes)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    dec_fps = n / (time.perf_counter() - t0)
    flops_fwd = forward_flops(ours.to(device), data.to(device), device)
    bf16 = device.type == "cuda"
    peak, peak_src = device_peak(device, bf16)
    result = {
        "clip": args.clip, "model": args.model, "params": ours.num_params(), "frames": info.num_frames,
        "size": f"{info.width}x{info.height}", "device": str(device), "cpu_threads": torch.get_num_threads(),
        "epochs": args.epochs, "batch": batch, "machine": platform.machine(),
        "reference": {"seconds": ref_s, "frame_steps_per_s": ref_fps, "psnr_yuv": ref_psnr},
        "nervcodec": {"seconds": fres.seconds, "frame_steps_per_s": our_fps, "psnr_yuv": our_psnr},
        "speedup": our_fps / ref_fps,
        "decode_fps": dec_fps,
        "train_flops_per_frame_step": 3 * flops_fwd,
        "mfu_nervcodec": 3 * flops_fwd * our_fps / peak if math.isfinite(peak) else None,
        "mfu_reference": 3 * flops_fwd * ref_fps / peak if math.isfinite(peak) else None,
        "peak_flops": peak, "peak_source": peak_src,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.model} {result['params']} params, {info.num_frames} frames {result['size']}, "
              f"{args.epochs} epochs on {device}")
        print(f"  reference eager loop: {ref_fps:8.1f} frame-steps/s  PSNR-YUV {ref_psnr:.2f} dB")
        print(f"  nervcodec fit:        {our_fps:8.1f} frame-steps/s  PSNR-YUV {our_psnr:.2f} dB  "
              f"(x{result['speedup']:.2f})")
        print(f"  decode: {dec_fps:.1f} frames/s; training FLOPs/frame-step {3 * flops_fwd / 1e9:.3f} G; "
              f"utilisation {result['mfu_nervcodec'] or float('nan'):.1%} of {peak / 1e12:.2f} TFLOP/s "
              f"({peak_src})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
