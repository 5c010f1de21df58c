"""Sweeps: a sweep file expands into named runs (spec), which run as processes (runner)."""

from sparsetrain.sweep.spec import SweepRun, SweepSpec, load_sweep

__all__ = ["SweepRun", "SweepSpec", "load_sweep"]
