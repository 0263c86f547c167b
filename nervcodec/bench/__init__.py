"""``nervcodec bench``: nervcodec against H.264 and HEVC, measured the same way for every codec.

* :mod:`.baselines` -- ffmpeg command builders for the anchors and their registry
* :mod:`.runner` -- encode, decode, measure; CRF sweep and default rate targets; BD figures
* :mod:`.results` -- result records and frame-weighted pooling
* :mod:`.report` -- terminal table, results.json / results.csv, RD plots
"""
from .baselines import BASELINES, BaselineSettings, decode_args, describe, encode_args, get_baseline
from .report import format_markdown, format_table, plot_rd, to_json, write_csv, write_json, write_outputs
from .results import BenchResult, ClipResult, Point, pool_points
from .runner import BenchConfig, bench_clip, compute_bd, default_bpp_targets, run_bench

__all__ = [
    "BASELINES", "BaselineSettings", "decode_args", "describe", "encode_args", "get_baseline",
    "format_markdown", "format_table", "plot_rd", "to_json", "write_csv", "write_json", "write_outputs",
    "BenchResult", "ClipResult", "Point", "pool_points",
    "BenchConfig", "bench_clip", "compute_bd", "default_bpp_targets", "run_bench",
]
