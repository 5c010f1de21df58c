"""The plan of a run: how many steps, which method in which steps, which lr in which epoch.

Phase i covers steps [start, end) with end = round(cumulative share * total steps), halves
rounded up (not Python's round-half-to-even), the last phase ending at the total, so a
schedule never changes how long a run is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from sparsetrain.config.schema import Recipe, TrainConfig
from sparsetrain.errors import ConfigError


@dataclass(frozen=True)
class PhasePlan:
    index: int
    method: Mapping[str, Any]
    start: int
    end: int
    restart_lr: bool = False

    @property
    def steps(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Plan:
    total_steps: int
    steps_per_epoch: int
    phases: tuple[PhasePlan, ...]

    @property
    def epochs(self) -> float:
        return self.total_steps / self.steps_per_epoch

    def phase_at(self, step: int) -> PhasePlan:
        """The phase that runs optimizer step number `step` (0-based)."""
        for phase in self.phases:
            if phase.start <= step < phase.end:
                return phase
        return self.phases[-1]

    def lr_epoch(self, step: int) -> int:
        """The epoch the lr schedule is in at `step`: epochs since the run's start, or since
        the start of the latest phase at or before `step` that restarts the lr."""
        origin = 0
        for phase in self.phases:
            if phase.start <= step and phase.restart_lr:
                origin = phase.start
        return (step - origin) // self.steps_per_epoch


def make_plan(recipe: Recipe, steps_per_epoch: int) -> Plan:
    train = recipe.train
    total = train.steps if train.steps is not None else train.epochs * steps_per_epoch
    if total <= 0:
        raise ConfigError(f"train.steps / train.epochs: the run would have {total} steps; "
                          "need at least 1")
    if not recipe.schedule:
        raise ConfigError("schedule: the recipe has no method or schedule")
    phases, start, shares = [], 0, []
    for index, phase in enumerate(recipe.schedule):
        shares.append(phase.share)
        last = index == len(recipe.schedule) - 1
        end = total if last else min(total, max(start, math.floor(math.fsum(shares) * total + 0.5)))
        phases.append(PhasePlan(index, phase.method, start, end, phase.restart_lr))
        start = end
    return Plan(total, steps_per_epoch, tuple(phases))


def learning_rate(train: TrainConfig, epoch: int) -> float:
    """lr for 0-based `epoch`: full for the first decay_after_epoch epochs, then decayed
    by lr_decay once per further epoch (Zaremba et al.: lr * decay ** max(e + 1 - d, 0))."""
    return train.lr * train.lr_decay ** max(epoch + 1 - train.decay_after_epoch, 0)
