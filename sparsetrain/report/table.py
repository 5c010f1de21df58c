"""The paper's tables as pandas DataFrames: one row per run, or per benchmarked method.

    Training method | Configuration | Sparsity | <metric> | Improvement (%) | Backward ms/step
    | Backward speedup | Wall s | Status

Improvement is relative to the baseline run, signed so that better is positive whatever the
metric's direction (perplexity: (base - x) / base; BLEU: (x - base) / base), as in the paper.
A run that has not completed shows its status and no score: it is never mixed in silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from sparsetrain.errors import ConfigError
from sparsetrain.report.bench_results import read_bench
from sparsetrain.report.runs import (SPLITS, RunRecord, find_baseline, schedule_name,
                                      shared_metric)

METHOD_TITLES = {"dense": "Dense", "coarse": "Coarse-grained", "fine": "Fine-grained",
                 "meprop": "meProp", "threshold": "Threshold", "adaptive": "Adaptive threshold"}


def training_method(schedule: list[dict[str, Any]]) -> str:
    """`Coarse-grained` for one phase (the paper's row titles), else `3/4 coarse + 1/4 dense`."""
    if len(schedule) == 1:
        name = schedule[0]["method"]["name"]
        return METHOD_TITLES.get(name, name)
    return schedule_name(schedule)


def configuration(schedule: list[dict[str, Any]]) -> str:
    """The sparse phases' parameters (`R=8, S=4`); `N/A` for dense."""
    texts = []
    for phase in schedule:
        params = {k: v for k, v in phase["method"].items() if k not in ("name", "P", "My", "Mx")}
        if params:
            texts.append(", ".join(f"{k}={v}" for k, v in params.items()))
    return "; ".join(dict.fromkeys(texts)) or "N/A"


def measured_sparsity(run: RunRecord) -> float | None:
    """Step-weighted mean sparsity of the dnet over the sparse phases (0 for dense runs)."""
    total, steps, last_step = 0.0, 0, 0
    for record in run.metrics():
        if record.get("event") != "train":
            continue
        span, last_step = record["step"] - last_step, record["step"]
        if record.get("method") == "dense" or record.get("sparsity") is None:
            continue
        total += record["sparsity"] * span
        steps += span
    if steps:
        return total / steps
    return 0.0 if run.is_dense else None


def runs_table(runs: list[RunRecord], baseline: str | None = None,
               split: str = "test") -> pd.DataFrame:
    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    metric = shared_metric(runs) or {"name": "metric", "lower_is_better": True}
    base = find_baseline(runs, baseline)
    base_score = _score(base, metric, split) if base else None
    base_ms = base.summary.get("backward_ms_per_step") if base else None
    rows = []
    for run in runs:
        schedule = run.schedule
        score = _score(run, metric, split)
        backward_ms = run.summary.get("backward_ms_per_step")
        rows.append({
            "Run": run.name,
            "Training method": training_method(schedule) if schedule else "?",
            "Configuration": configuration(schedule) if schedule else "?",
            "Sparsity": measured_sparsity(run),
            _metric_title(metric, split): score,
            "Improvement (%)": _improvement(score, base_score, metric),
            "Backward ms/step": backward_ms,
            "Backward speedup": (base_ms / backward_ms if base_ms and backward_ms else None),
            "Wall s": run.summary.get("wall_s"),
            "Status": run.status if run.status != "running" else "incomplete (running or killed)",
        })
    return pd.DataFrame(rows)


def bench_table(paths: Iterable[Path]) -> pd.DataFrame:
    """The speedup table from `sparsetrain bench` JSON files."""
    rows = []
    for path in paths:
        results, device = read_bench(path)
        for result in results:
            spec = result.get("spec", {})
            rows.append({
                "Device": device, "Shape": result["shape"], "dtype": result["dtype"],
                "Method": METHOD_TITLES.get(result["method"], result["method"]),
                "Configuration": configuration([{"method": spec}]) if spec else "N/A",
                "Sparsity": result.get("sparsity"),
                "Backward ms": result["backward_ms"],
                "Speedup vs dense": result.get("speedup_vs_dense"),
                "Speedup vs cuDNN": result.get("speedup_vs_cudnn"),
            })
    return pd.DataFrame(rows)


def _score(run: RunRecord, metric: dict[str, Any], split: str) -> float | None:
    return run.final_score(split, metric["name"]) if run.completed else None


def _improvement(score: float | None, base: float | None, metric: dict[str, Any]
                 ) -> float | None:
    if score is None or not base:
        return None
    change = (score - base) / base * 100
    return (-change if metric["lower_is_better"] else change) + 0.0  # no "-0.00%"


def _metric_title(metric: dict[str, Any], split: str) -> str:
    name = {"perplexity": "Perplexity", "bleu": "BLEU"}.get(metric["name"], metric["name"])
    return f"{name} ({split})"
