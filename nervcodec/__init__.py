"""nervcodec: a neural video codec (NeRV and D-NeRV) that writes real files."""
__version__ = "0.1.0"
