"""`plot curves` (valid metric vs step and vs wall time) and `plot stats` (the gate-gradient
statistics vs step), one colour per run, phase switches as dashed lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sparsetrain.errors import ConfigError
from sparsetrain.report import plots
from sparsetrain.report.runs import RunRecord

STATS = (("sparsity", "sparsity"), ("kept_energy", "kept energy"), ("cosine", "cosine"))
LAYER_STYLES = ("-", "--", ":", "-.")


def _estimated_wall(run: RunRecord) -> Any:
    """Step -> training seconds from summary.json's phase wall times, for runs written before
    eval records carried `wall_s` (evaluation time is not in them)."""
    done = run.summary.get("steps", 0)
    steps, seconds = [0], [0.0]
    for phase in run.summary_phases:
        end = min(phase["end"], done)
        if end > phase["start"]:
            steps.append(end)
            seconds.append(seconds[-1] + phase.get("wall_s", 0.0))
    return lambda step: float(np.interp(step, steps, seconds))


def _valid_curve(run: RunRecord, name: str) -> list[tuple[int, float, float | None]]:
    return [(record["step"], record[name], record.get("wall_s")) for record in run.metrics()
            if record.get("event") == "eval" and record.get("split") == "valid"
            and record.get(name) is not None]


def curves(runs: list[RunRecord], out: Path) -> list[str]:
    name, lower_is_better = plots.metric(runs)
    plt = plots.pyplot()
    from matplotlib import ticker
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    notes, drawn = [], 0
    for run, colour in zip(runs, plots.colours(len(runs))):
        points = _valid_curve(run, name)
        if not points:
            notes.append(f"{run.name}: no valid {name} in metrics.jsonl; skipped")
            continue
        steps, values, walls = zip(*points)
        tag = plots.label(run)
        if any(wall is None for wall in walls):
            estimate = _estimated_wall(run)
            walls = [estimate(step) for step in steps]
            tag += " [time est. from phase times]"
            notes.append(f"{run.name}: eval records carry no wall_s (an older run); its wall "
                         "times are estimated from summary.json's phase times")
        style = dict(color=colour, marker="o", markersize=3,
                     linestyle="-" if run.completed else ":",
                     markerfacecolor=colour if run.completed else "none")
        by_step.plot(steps, values, label=tag, **style)
        by_time.plot(walls, values, **style)
        plots.mark_phase_switches(by_step, run, colour)
        known = ([0, *steps], [0.0, *walls])
        plots.mark_phase_switches(
            by_time, run, colour,
            at=lambda step: float(np.interp(step, *known)) if step <= known[0][-1] else None)
        drawn += 1
    if not drawn:
        raise ConfigError(f"no run has a valid {name} evaluation in its metrics.jsonl")
    direction = "lower" if lower_is_better else "higher"
    for axes, xlabel in ((by_step, "optimizer step"), (by_time, "wall time, s")):
        axes.set_xlabel(xlabel)
        axes.set_ylabel(f"valid {name} ({direction} is better)")
        axes.grid(alpha=0.3)
        if lower_is_better and name == "perplexity":
            axes.set_yscale("log")
            axes.yaxis.set_major_formatter(ticker.ScalarFormatter())
            axes.yaxis.set_minor_formatter(ticker.ScalarFormatter())
    by_step.legend(fontsize="small")
    figure.suptitle("Learning curves (dashed: phase switch)")
    figure.tight_layout()
    plots.save(figure, out)
    return notes


def stats(runs: list[RunRecord], out: Path) -> list[str]:
    plt = plots.pyplot()
    figure, panels = plt.subplots(len(STATS), 1, figsize=(9, 8), sharex=True)
    notes, drawn = [], 0
    for run, colour in zip(runs, plots.colours(len(runs))):
        records = [r for r in run.metrics() if r.get("event") == "train" and r.get("layers")]
        if not records:
            notes.append(f"{run.name}: no train records with layer statistics; skipped")
            continue
        layers = max(len(record["layers"]) for record in records)
        for (key, _), axes in zip(STATS, panels):
            for layer in range(layers):
                points = [(record["step"], record["layers"][layer].get(key))
                          for record in records if layer < len(record["layers"])]
                points = [(step, value) for step, value in points if value is not None]
                if not points:
                    continue
                axes.plot(*zip(*points), color=colour, alpha=1.0 if run.completed else 0.5,
                          linestyle=LAYER_STYLES[layer % len(LAYER_STYLES)],
                          label=f"{plots.label(run)}, layer {layer}")
            plots.mark_phase_switches(axes, run, colour)
        drawn += 1
    if not drawn:
        raise ConfigError("no run has train records with layer statistics in metrics.jsonl")
    for (_, title), axes in zip(STATS, panels):
        axes.set_ylabel(title)
        axes.grid(alpha=0.3)
    panels[-1].set_xlabel("optimizer step")
    panels[0].legend(fontsize="x-small", ncol=2)
    figure.suptitle("Gate-gradient statistics per layer (mean over each log window)")
    figure.tight_layout()
    plots.save(figure, out)
    return notes
