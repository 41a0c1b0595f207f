"""xtrc_runtime: what runs inside the image — one stage at a time."""

__version__ = "0.1.0"
