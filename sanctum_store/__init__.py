"""sanctum-store: keep every Sanctum snapshot of an esper training run, and compare runs."""

__version__ = "0.1.0"
