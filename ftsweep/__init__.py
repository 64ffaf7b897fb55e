"""ftsweep: declarative fine-tuning experiment manager."""

__version__ = "0.1.0"
