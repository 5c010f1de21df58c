"""`plot histogram`: a run's recorded dnet histograms (record.dnet_steps), one row per layer,
one column per gate, the recorded steps overlaid; counts on a log scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sparsetrain.errors import ConfigError
from sparsetrain.report import plots
from sparsetrain.report.runs import RunRecord
from sparsetrain.train.rundir import DNET_HISTOGRAMS, RunDir


def read_histograms(run: RunRecord) -> dict[str, Any]:
    data = RunDir(run.path).read_json(DNET_HISTOGRAMS)
    if not data or not data.get("steps"):
        raise ConfigError(f"{run.path}: no dnet histograms recorded (run with "
                          "--set 'record.dnet_steps=[1,100]' to record some)")
    return data


def histogram(runs: list[RunRecord], out: Path, steps: tuple[int, ...] = (),
              absolute: bool = False) -> list[str]:
    if len(runs) != 1:
        raise ConfigError(f"plot histogram takes one run directory, got {len(runs)} runs")
    run = runs[0]
    data = read_histograms(run)
    recorded = {entry["step"]: entry for entry in data["steps"]}
    missing = [step for step in steps if step not in recorded]
    if missing:
        raise ConfigError(f"--step {missing[0]}: not recorded in {run.name}; recorded steps: "
                          f"{', '.join(map(str, recorded))}")
    chosen = [recorded[step] for step in (steps or recorded)]
    layers = sorted({(layer["module"], layer["layer"]) for entry in chosen
                     for layer in entry["layers"]})
    gates = data["gates"]
    plt = plots.pyplot()
    figure, grid = plt.subplots(len(layers), len(gates), squeeze=False,
                                figsize=(3.2 * len(gates), 2.6 * len(layers) + 0.8))
    for entry, colour in zip(chosen, plots.colours(len(chosen))):
        for row, key in enumerate(layers):
            layer = next((item for item in entry["layers"]
                          if (item["module"], item["layer"]) == key), None)
            if layer is None:
                continue
            for axes, gate in zip(grid[row], gates):
                _draw_gate(axes, layer["gates"][gate], entry, colour, absolute)
    for row, (module, layer) in enumerate(layers):
        for axes, gate in zip(grid[row], gates):
            axes.set_yscale("log")
            axes.set_title(f"{'' if module == 0 else f'lstm {module} '}layer {layer}, "
                           f"gate {gate}", fontsize="small")
            axes.legend(fontsize="xx-small")
            axes.tick_params(labelsize="x-small")
        grid[row][0].set_ylabel("count")
    for axes in grid[-1]:
        axes.set_xlabel("dnet" if absolute else "dnet / max |dnet|", fontsize="small")
    figure.suptitle(f"{plots.label(run)}: dnet before sparsification per gate "
                    "(legend: max |dnet|, share below 1e-2 of it)", fontsize="medium")
    figure.tight_layout()
    plots.save(figure, out)
    return []


def _draw_gate(axes: Any, gate: dict[str, Any], entry: dict[str, Any], colour: Any,
               absolute: bool) -> None:
    edges = np.asarray(gate["edges"])
    if not absolute and gate["max_abs"] > 0:
        edges = edges / gate["max_abs"]
    counts = np.asarray(gate["counts"], dtype=float)
    # log scale: empty bins are drawn at the floor, not as gaps
    axes.stairs(np.where(counts > 0, counts, 0.5), edges, color=colour, baseline=0.5,
                label=f"step {entry['step']} ({entry['method']['name']}): "
                      f"{gate['max_abs']:.1e}, {100 * gate['fraction_below']['1e-2']:.0f}%")
