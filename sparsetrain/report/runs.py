"""Run directories as plain records: what `table` and `plot` read.

A path given to `table` or `plot` is either one run directory (it holds `recipe.yaml` or
`summary.json`) or a folder of runs, such as a sweep root (its `sweep.yaml` lists the runs in
the sweep's order; otherwise its run subfolders are taken in name order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from sparsetrain.errors import ConfigError

SWEEP_FILE = "sweep.yaml"
RUN_MARKERS = ("recipe.yaml", "summary.json")


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

    def metrics(self) -> list[dict[str, Any]]:
        """The lines of metrics.jsonl (a torn last line, from a killed run, is skipped)."""
        path = self.path / "metrics.jsonl"
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


def is_run_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in RUN_MARKERS)


def read_run(path: Path, name: str | None = None) -> RunRecord:
    summary = _read_json(path / "summary.json")
    recipe = _read_yaml(path / "recipe.yaml")
    status = summary.get("status", "missing") if summary else "missing"
    return RunRecord(name or path.name, path, status, recipe, summary)


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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
