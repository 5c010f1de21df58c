"""What every `sparsetrain plot` figure shares: matplotlib off-screen, atomic PNGs, run labels,
the task's metric, phase boundaries.

The figures themselves: `plot_tradeoff` (quality vs backward speedup), `plot_curves` (learning
curves and gate-gradient statistics), `plot_histogram` (recorded dnet histograms). Each takes
`RunRecord`s (sparsetrain.report.runs) and returns notes for the user (runs skipped, values
estimated); incomplete runs are drawn apart (hollow, dotted, labelled) and never mixed silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparsetrain.errors import ConfigError
from sparsetrain.files import write_atomically
from sparsetrain.report.runs import RunRecord, shared_metric


def pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(figure: Any, path: Path) -> None:
    """Write the PNG atomically."""
    try:
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    finally:
        pyplot().close(figure)


def label(run: RunRecord) -> str:
    return run.name if run.completed else f"{run.name} (incomplete: {run.status})"


def metric(runs: list[RunRecord]) -> tuple[str, bool]:
    """The metric name and lower_is_better the runs share (a ConfigError when none says)."""
    shared = shared_metric(runs)
    if shared is None:
        raise ConfigError("no run has a summary.json naming its metric: nothing to plot")
    return shared["name"], bool(shared["lower_is_better"])


def mark_phase_switches(axes: Any, run: RunRecord, colour: Any, at: Any = None) -> None:
    """A dashed vertical line where each later phase started (`at` maps a step to x); a
    switch an incomplete run has not reached is not drawn."""
    for phase in run.summary_phases[1:]:
        if phase["start"] >= run.summary.get("steps", 0):
            continue
        x = phase["start"] if at is None else at(phase["start"])
        if x is None:
            continue
        axes.axvline(x, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
        axes.annotate(f"→ {phase['method']['name']}", (x, 1.0), xycoords=("data", "axes fraction"),
                      rotation=90, va="top", ha="right", fontsize="x-small", color=colour)


def colours(count: int) -> list[Any]:
    cycle = pyplot().get_cmap("tab10")
    return [cycle(index % 10) for index in range(count)]
