"""The plan of a run: phase boundaries at round(cumulative share * total), lr decay."""

from __future__ import annotations

import pytest

from sparsetrain import ConfigError
from sparsetrain.config.schema import Phase, Recipe, TrainConfig
from sparsetrain.train.schedule import learning_rate, make_plan

COARSE = {"name": "coarse", "P": 4, "R": 8, "S": 4}
DENSE = {"name": "dense"}


def recipe(shares, steps=None, epochs=3):
    methods = [COARSE if i % 2 == 0 else DENSE for i in range(len(shares))]
    return Recipe(schedule=tuple(Phase(m, s) for m, s in zip(methods, shares)),
                  train=TrainConfig(steps=steps, epochs=epochs))


def test_total_steps_are_epochs_times_steps_per_epoch_unless_steps_is_set():
    assert make_plan(recipe([1.0], epochs=3), 100).total_steps == 300
    assert make_plan(recipe([1.0], steps=17, epochs=3), 100).total_steps == 17


@pytest.mark.parametrize("shares", [[1.0], [0.75, 0.25], [0.5, 0.5], [5 / 6, 1 / 6],
                                    [0.3, 0.3, 0.4]])
@pytest.mark.parametrize("total", [1, 7, 100, 1001])
def test_phases_end_at_the_rounded_cumulative_share_and_cover_every_step(shares, total):
    plan = make_plan(recipe(shares, steps=total), 10)
    running, expected_ends = 0.0, []
    for share in shares:
        running += share
        expected_ends.append(int(running * total + 0.5) if running < 1 - 1e-9 else total)
    assert [p.end for p in plan.phases] == expected_ends
    assert [p.start for p in plan.phases] == [0, *expected_ends[:-1]]
    assert sum(p.steps for p in plan.phases) == total


def test_a_schedule_does_not_change_the_total_steps():
    assert make_plan(recipe([0.75, 0.25]), 414).total_steps == \
        make_plan(recipe([1.0]), 414).total_steps


def test_phase_at_gives_the_phase_running_each_step():
    plan = make_plan(recipe([0.75, 0.25], steps=8), 10)
    assert [plan.phase_at(step).index for step in range(8)] == [0] * 6 + [1] * 2


def test_zero_total_steps_is_refused_naming_the_keys():
    with pytest.raises(ConfigError, match="train.steps"):
        make_plan(recipe([1.0], epochs=0), 10)


def test_lr_stays_full_for_decay_after_epoch_epochs_then_decays_once_per_epoch():
    train = TrainConfig(lr=1.0, lr_decay=0.8, decay_after_epoch=6)
    assert [learning_rate(train, e) for e in range(6)] == [1.0] * 6
    assert learning_rate(train, 6) == pytest.approx(0.8)
    assert learning_rate(train, 9) == pytest.approx(0.8 ** 4)


def test_without_restart_the_lr_epoch_is_the_run_epoch():
    plan = make_plan(recipe([0.75, 0.25], epochs=4), 10)
    assert [plan.lr_epoch(step) for step in (0, 9, 10, 29, 30, 39)] == [0, 0, 1, 2, 3, 3]


def test_a_phase_that_restarts_the_lr_counts_its_epochs_from_its_first_step():
    schedule = (Phase(COARSE, 0.75), Phase(DENSE, 0.25, restart_lr=True))
    plan = make_plan(Recipe(schedule=schedule, train=TrainConfig(epochs=4)), 10)
    assert plan.phases[1].start == 30
    assert [plan.lr_epoch(step) for step in (29, 30, 39)] == [2, 0, 0]
    train = TrainConfig(lr=1.0, lr_decay=0.5, decay_after_epoch=1)
    assert learning_rate(train, plan.lr_epoch(29)) == pytest.approx(0.25)
    assert learning_rate(train, plan.lr_epoch(30)) == 1.0
