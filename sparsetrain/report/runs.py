"""Run directories as plain records: what `table` and `plot` read.

A path given to `table` or `plot` is either one run directory (it holds `recipe.yaml` or
`summary.json`) or a folder of runs, such as a sweep root (its `sweep.yaml` lists the runs in
the sweep's order; otherwise its run subfolders are taken in name order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import yaml

from sparsetrain.errors import ConfigError
from sparsetrain.train.rundir import METRICS, RECIPE, SUMMARY, RunDir

SWEEP_FILE = "sweep.yaml"
RUN_MARKERS = (RECIPE, SUMMARY)
SPLITS = ("test", "valid")  # the final scores a run reports


@dataclass(frozen=True)
class RunRecord:
    """One run directory. `status` is the summary's (completed, failed, interrupted,
    running), or `missing` when the run has not written a summary yet; a `running` run
    whose process was killed looks the same as a live one, so readers call both
    incomplete."""

    name: str
    path: Path
    status: str
    recipe: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def summary_phases(self) -> list[dict[str, Any]]:
        """summary.json's phases as run: method, start, end, steps, wall_s."""
        return [phase for phase in self.summary.get("phases", []) if isinstance(phase, dict)]

    def final_score(self, split: str, metric: str) -> float | None:
        """The final `split` (valid, test) value of `metric` in summary.json, if there."""
        return (self.summary.get("final") or {}).get(f"{split}_{metric}")

    @property
    def schedule(self) -> list[dict[str, Any]]:
        """Phases as `{method, share[, restart_lr]}`: the resolved recipe's, else (a run dir
        without recipe.yaml) summary.json's, with shares from their step counts."""
        phases = self.recipe.get("schedule")
        if isinstance(phases, list) and phases:
            return phases
        phases = self.summary_phases
        total = sum(phase.get("steps", 0) for phase in phases) or 1
        return [{"method": phase["method"], "share": phase.get("steps", 0) / total,
                 "restart_lr": phase.get("restart_lr", False)} for phase in phases]

    @property
    def is_dense(self) -> bool:
        phases = self.schedule
        return len(phases) == 1 and phases[0]["method"]["name"] == "dense"

    def metrics(self) -> list[dict[str, Any]]:
        """The lines of metrics.jsonl (a torn last line, from a killed run, is skipped)."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        records = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return records


def schedule_name(schedule: list[dict[str, Any]]) -> str:
    """`coarse` for one phase; `3/4 coarse + 1/4 dense (lr restarted)` for a schedule."""
    if not schedule:
        return "unknown"
    if len(schedule) == 1:
        return schedule[0]["method"]["name"]
    return " + ".join(
        f"{Fraction(phase['share']).limit_denominator(12)} {phase['method']['name']}"
        f"{' (lr restarted)' if phase.get('restart_lr') else ''}" for phase in schedule)


def shared_metric(runs: list[RunRecord]) -> dict[str, Any] | None:
    """The `{name, lower_is_better}` every run scores with (None when no run says); runs of
    different metrics are a ConfigError: one table or figure per task."""
    found = {run.summary["metric"]["name"]: run.summary["metric"] for run in runs
             if isinstance(run.summary.get("metric"), dict)}
    if len(found) > 1:
        raise ConfigError(f"the runs score with different metrics ({', '.join(sorted(found))}); "
                          "make one table or figure per task")
    return next(iter(found.values()), None)


def find_baseline(runs: list[RunRecord], name: str | None) -> RunRecord | None:
    """The run named `name` (a ConfigError if none is), else the first dense run, completed
    ones first; None when there is no dense run."""
    if name is not None:
        for run in runs:
            if run.name == name:
                return run
        raise ConfigError(f"--baseline: no run named {name!r}; runs: "
                          f"{', '.join(run.name for run in runs)}")
    dense = sorted((run for run in runs if run.is_dense), key=lambda run: not run.completed)
    return dense[0] if dense else None


def is_run_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in RUN_MARKERS)


def read_run(path: Path) -> RunRecord:
    summary = RunDir(path).read_json(SUMMARY) or {}
    recipe = _read_yaml(path / RECIPE)
    status = summary.get("status", "missing")
    return RunRecord(path.name, path, status, recipe, summary)


def find_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run under `paths`, in order; a path that holds no run is a ConfigError."""
    runs: list[RunRecord] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise ConfigError(f"{path}: no such folder (expected a run or sweep directory)")
        if is_run_dir(path):
            runs.append(read_run(path))
            continue
        found = [read_run(child) for child in _sweep_order(path) if is_run_dir(child)]
        if not found:
            raise ConfigError(f"{path}: holds no run directory (a run has recipe.yaml or "
                              "summary.json; a sweep root holds runs)")
        runs.extend(found)
    return runs


def _sweep_order(root: Path) -> list[Path]:
    children = sorted(child for child in root.iterdir() if child.is_dir())
    listed = _read_yaml(root / SWEEP_FILE).get("runs")
    if not isinstance(listed, list):
        return children
    names = [run["name"] for run in listed if isinstance(run, dict) and "name" in run]
    by_name = {child.name: child for child in children}
    ordered = [by_name.pop(name) for name in names if name in by_name]
    return ordered + sorted(by_name.values())


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
