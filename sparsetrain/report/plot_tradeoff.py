"""`plot tradeoff` (the paper's Figure 3): quality vs backward speedup, one marker per schedule.

Speedup comes from the training runs (baseline backward_ms_per_step / the run's) or, with a
`sparsetrain bench` JSON, from the benchmark: each phase's method and sparsity is looked up
there and weighted by the phase's share of the steps, over the benchmark's dense time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsetrain.errors import ConfigError
from sparsetrain.report import plots
from sparsetrain.report.bench_results import read_bench
from sparsetrain.report.runs import RunRecord, find_baseline, schedule_name

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass(frozen=True)
class Point:
    run: RunRecord
    quality: float
    speedup: float


def baseline_run(runs: list[RunRecord], name: str | None) -> tuple[RunRecord, list[str]]:
    base = find_baseline(runs, name)
    if base is None:
        raise ConfigError("no dense run (one dense phase) to be the speedup baseline; "
                          "pass --baseline NAME or --bench FILE.json")
    dense = sum(run.is_dense for run in runs)
    notes = ([f"baseline: {base.name} (first of {dense} dense runs; --baseline NAME picks "
              "another)"] if name is None and dense > 1 else [])
    return base, notes


def phase_sparsity(method: dict[str, Any], batch: int | None) -> float | None:
    name = method["name"]
    if name == "dense":
        return 0.0
    if name == "coarse":
        return method["S"] / method["R"]
    if name == "fine" and batch:
        return method["K"] / (batch // method["My"])
    if name == "meprop":
        return 1 - method["keep"]
    return None  # threshold, adaptive: data-dependent, not benchmarked


class Bench:
    """Backward ms per (shape, dtype, method, sparsity) from a `sparsetrain bench` JSON."""

    def __init__(self, path: Path, shape: str | None) -> None:
        rows, _ = read_bench(path)
        self.path = path
        self.rows = [row for row in rows if row.get("backward_ms")
                     and (shape is None or row.get("shape") == shape)]
        if not self.rows:
            raise ConfigError(f"--bench {path}: no timed rows"
                              + (f" for shape {shape!r}" if shape else ""))
        self.groups: set[tuple[str, str]] = set()

    def _group(self, run: RunRecord) -> list[dict[str, Any]]:
        dtype = run.recipe.get("dtype", run.summary.get("dtype"))
        rows = [row for row in self.rows if row["dtype"] == dtype] or self.rows
        groups = sorted({(row["shape"], row["dtype"]) for row in rows})
        if len(groups) > 1:
            model, train = run.recipe.get("model", {}), run.recipe.get("train", {})
            wanted = (model.get("hidden_size"), train.get("batch_size"), train.get("bptt"),
                      model.get("num_layers"))
            groups = sorted({(row["shape"], row["dtype"]) for row in rows if (
                row["hidden"], row["batch"], row["steps"], row["layers"]) == wanted})
        if len(groups) != 1:
            shapes = ", ".join(sorted({row["shape"] for row in self.rows}))
            raise ConfigError(f"--bench {self.path}: cannot tell which shape matches run "
                              f"{run.name} (shapes: {shapes}); pass --bench-shape NAME")
        self.groups.add(groups[0])
        return [row for row in self.rows if (row["shape"], row["dtype"]) == groups[0]]

    def speedup(self, run: RunRecord) -> float | str:
        """The schedule-weighted speedup over the bench's dense, or why there is none."""
        rows = self._group(run)
        dense = [row["backward_ms"] for row in rows if row["method"] == "dense"]
        if not dense:
            return "the bench has no dense row"
        total, weighted = 0, 0.0
        for phase in run.summary_phases:
            method = phase["method"]
            level = phase_sparsity(method, run.recipe.get("train", {}).get("batch_size"))
            found = [row for row in rows if row["method"] == method["name"] and level is not None
                     and abs(row["sparsity"] - level) < 1e-6]
            found.sort(key=lambda row: row.get("spec") != method)
            if not found:
                return f"the bench has no {method['name']} row at sparsity {level}"
            total += phase["steps"]
            weighted += phase["steps"] * found[0]["backward_ms"]
        return dense[0] * total / weighted if weighted else "no phases in summary.json"


def tradeoff(runs: list[RunRecord], out: Path, baseline: str | None = None,
             bench_file: Path | None = None, bench_shape: str | None = None,
             split: str = "test") -> list[str]:
    name, lower_is_better = plots.metric(runs)
    notes: list[str] = []
    if bench_file is not None:
        bench = Bench(bench_file, bench_shape)
        speedup = bench.speedup
    else:
        base, notes = baseline_run(runs, baseline)
        base_ms = base.summary.get("backward_ms_per_step")
        if not base_ms:
            raise ConfigError(f"baseline {base.name} has no backward_ms_per_step in its "
                              "summary.json")

        def speedup(run: RunRecord) -> float | str:
            ms = run.summary.get("backward_ms_per_step")
            return base_ms / ms if ms else "no backward_ms_per_step in summary.json"

    points = []
    for run in runs:
        quality, fast = run.final_score(split, name), speedup(run)
        if quality is None or isinstance(fast, str):
            why = fast if isinstance(fast, str) else f"no {split}_{name} in summary.json"
            notes.append(f"{run.name} ({run.status}): {why}; skipped")
            continue
        points.append(Point(run, quality, fast))
    if not points:
        raise ConfigError(f"no run has both a {split} {name} and a speedup to plot")
    if bench_file is not None:
        shapes = ", ".join(f"{shape} {dtype}" for shape, dtype in sorted(bench.groups))
        source = f"speedup: bench {bench_file.name} ({shapes}) over its dense, phases weighted"
    else:
        source = f"speedup: training runs' backward ms/step over {base.name}'s"
    _draw(points, out, name, lower_is_better, split, source)
    return notes


def _draw(points: list[Point], out: Path, name: str, lower_is_better: bool, split: str,
          source: str) -> None:
    plt = plots.pyplot()
    figure, axes = plt.subplots(figsize=(8, 5.5))
    families = list(dict.fromkeys(schedule_name(point.run.schedule) for point in points))
    colours = plots.colours(len(families))
    for index, family in enumerate(families):
        for complete in (True, False):
            chosen = [p for p in points
                      if schedule_name(p.run.schedule) == family and p.run.completed == complete]
            if not chosen:
                continue
            axes.scatter([p.speedup for p in chosen], [p.quality for p in chosen], s=60,
                         marker=MARKERS[index % len(MARKERS)], edgecolors=colours[index],
                         facecolors=colours[index] if complete else "none", linewidths=1.5,
                         label=family if complete else f"{family} (incomplete)")
    for point in points:
        axes.annotate(plots.label(point.run), (point.speedup, point.quality),
                      textcoords="offset points", xytext=(6, 4), fontsize="x-small")
    axes.axvline(1.0, color="grey", linewidth=0.8, alpha=0.5)
    axes.set_xlabel("backward speedup (x)")
    direction = "lower" if lower_is_better else "higher"
    axes.set_ylabel(f"{split} {name} ({direction} is better)")
    axes.set_title(f"Quality vs backward speedup\n{source}", fontsize="medium")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", title="schedule (hollow: incomplete)",
                title_fontsize="x-small")
    figure.tight_layout()
    plots.save(figure, out)
