"""Adapters for external programs.  Every subprocess nervcodec starts goes through here."""
from .ffmpeg import FFMPEG_ENV, ffmpeg_exe, run_ffmpeg, start_ffmpeg, FFmpegProcess

__all__ = ["FFMPEG_ENV", "ffmpeg_exe", "run_ffmpeg", "start_ffmpeg", "FFmpegProcess"]
