"""summary.json: the run's outcome in one small file (what `sparsetrain table` reads)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparsetrain.train.setup import Setup

STATS = ("sparsity", "kept_energy", "cosine")


def layer_means(layers: list[dict[str, float]]) -> dict[str, float | None]:
    """Each gradient statistic averaged over the layers that reported it."""
    means: dict[str, float | None] = {}
    for key in STATS:
        values = [layer[key] for layer in layers if key in layer]
        means[key] = sum(values) / len(values) if values else None
    return means


def merge_stats(old: dict[str, float], new: dict[str, float], old_steps: int,
                new_steps: int) -> dict[str, float]:
    """Averages over old_steps + new_steps from the averages over each part."""
    merged = {}
    for key in STATS:
        if key in old and key in new:
            merged[key] = (old[key] * old_steps + new[key] * new_steps) / (old_steps + new_steps)
        elif key in old or key in new:
            merged[key] = old.get(key, new.get(key))
    return merged


def final_text(summary: dict[str, Any]) -> str:
    """`valid_perplexity 95.11, test_perplexity 91.82`: a finished run's scores in a line."""
    return ", ".join(f"{key} {value:.2f}" for key, value in (summary.get("final") or {}).items()
                     if value is not None)


def summary(setup: Setup, counters: dict[str, Any], status: str, message: str,
            wall_s: float) -> dict[str, Any]:
    plan, metric = setup.plan, setup.task.metric
    final = {f"{split}_{metric.name}": record[metric.name]
             for split, record in counters["evals"].items()}
    steps = counters["step"]
    return {
        "status": status,
        "message": message,
        "task": setup.recipe.task,
        "metric": {"name": metric.name, "lower_is_better": metric.lower_is_better,
                   **({"signature": metric.signature} if metric.signature else {})},
        "final": {key: value if math.isfinite(value) else None for key, value in final.items()},
        "steps": steps,
        "total_steps": plan.total_steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "epochs": steps / plan.steps_per_epoch,
        "phases": [{"phase": phase.index, "method": dict(phase.method), "start": phase.start,
                    "end": phase.end, "steps": phase.steps, "restart_lr": phase.restart_lr,
                    "wall_s": counters["phase_wall_s"][phase.index]}
                   for phase in plan.phases],
        "wall_s": wall_s,
        "train_wall_s": counters["train_wall_s"],
        "backward_ms_per_step": (counters["backward_ms"] / counters["backward_steps"]
                                 if counters["backward_steps"] else None),
        "device": str(setup.device),
        "dtype": setup.recipe.dtype,
        "seed": setup.seed,
    }
