"""`sparsetrain run RECIPE`: train and evaluate one configuration into runs/<name>/."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sparsetrain.cli._errors import UserError, user_errors
from sparsetrain.config.load import dump_recipe, load_recipe
from sparsetrain.config.schema import Recipe
from sparsetrain.errors import ConfigError
from sparsetrain.train.interrupt import StopRequest
from sparsetrain.train.progress import ProgressDisplay
from sparsetrain.train.rundir import ENV, RECIPE, SUMMARY, RunDir
from sparsetrain.train.summary import final_text

if TYPE_CHECKING:
    from sparsetrain.train.setup import Setup

FAILED_EXIT_CODE = 1


@click.command("run")
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Change one recipe value (a YAML scalar), e.g. --set train.lr=0.5.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="Folder that holds run directories.")
@click.option("--name", help="Run directory name (default: the recipe file's stem).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run to its last step.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]),
              help="Override the recipe's device.")
@click.option("--dry-run", is_flag=True,
              help="Validate, print the resolved recipe and the plan; create nothing.")
@user_errors
def command(recipe_file: Path, overrides: tuple[str, ...], out: Path, name: str | None,
            resume: bool, device: str | None, dry_run: bool) -> None:
    """Train and evaluate the configuration in RECIPE; results go to OUT/NAME/."""
    if device:
        overrides = (*overrides, f"device={device}")
    recipe = load_recipe(recipe_file, overrides)
    name = name or recipe_file.stem
    if not name or "/" in name or name in (".", ".."):
        raise UserError(f"--name: {name!r} is not a folder name")
    run = RunDir(out / name)
    if dry_run:
        _dry_run(recipe, run)
        return
    if resume:
        if _check_resumable(run, recipe):
            return
    elif run.exists():
        raise UserError(f"run directory {run.path} already exists; use --resume to continue "
                        "it or --name NAME to start a new run")
    # Training modules load torch: only here, so other commands start without it.
    from sparsetrain.train.setup import prepare
    from sparsetrain.train.trainer import Trainer

    setup = prepare(recipe)
    with StopRequest() as stop, ProgressDisplay(setup.plan.total_steps,
                                                setup.plan.steps_per_epoch,
                                                setup.task.metric.name) as display:
        trainer = Trainer(setup, run, display, stop)
        try:
            if resume:
                display.message(f"resuming {run.path}")
                outcome = trainer.resume()
            else:
                _create(run, setup)
                outcome = trainer.start()
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, from the last checkpoint
            click.echo(f"stopped at once; --resume continues {run.path} from its last "
                       "checkpoint", err=True)
            sys.exit(128 + signal.SIGINT)
    _report(outcome.status, outcome.message, run, recipe_file, stop.signal)


def _create(run: RunDir, setup: Setup) -> None:
    from sparsetrain.train import envinfo

    run.create()
    run.write_text(RECIPE, dump_recipe(setup.recipe))
    run.write_json(ENV, envinfo.collect(setup.seed, setup.device, sys.argv[1:]))


def _check_resumable(run: RunDir, recipe: Recipe) -> bool:
    """True when the run is already complete (nothing to do); errors when it cannot resume."""
    status = run.status()
    if status == "completed":
        click.echo(f"run {run.path} already completed; see {run.file(SUMMARY)}")
        return True
    if not run.resumable(status):
        raise UserError(f"--resume: nothing to resume in {run.path} (no checkpoint); "
                        "start the run without --resume")
    try:
        started = load_recipe(run.file(RECIPE))
    except ConfigError as error:
        raise UserError(f"--resume: cannot read {run.file(RECIPE)}: "
                        f"{str(error).splitlines()[0]}") from None
    # The device may change between sessions (--device); everything else must not.
    if replace(started, device=recipe.device) != recipe:
        raise UserError(f"--resume: the recipe (with --set) differs from {run.file(RECIPE)}, "
                        "which the run started with; resume with the same settings or use "
                        "--name NAME for a new run")
    return False


def _dry_run(recipe: Recipe, run: RunDir) -> None:
    from sparsetrain.train.setup import prepare

    setup = prepare(recipe)
    plan = setup.plan
    click.echo(dump_recipe(recipe), nl=False)
    click.echo(f"# plan: {plan.total_steps} steps = {plan.epochs:g} epochs of "
               f"{plan.steps_per_epoch} steps, on {setup.device} in {recipe.dtype}")
    for phase in plan.phases:
        method = ", ".join(f"{k}={v}" for k, v in phase.method.items() if k != "name")
        click.echo(f"#   phase {phase.index}: {phase.method['name']}"
                   f"{f' ({method})' if method else ''}: steps {phase.start}..{phase.end} "
                   f"({phase.steps} steps)")
    state = "exists: needs --resume or --name" if run.exists() else "dry run: not created"
    click.echo(f"# run directory: {run.path} ({state})")


def _report(status: str, message: str, run: RunDir, recipe_file: Path,
            signal_name: str | None) -> None:
    summary = run.read_json(SUMMARY) or {}
    if status == "completed":
        click.echo(f"completed {summary.get('steps')} steps in {run.path}: "
                   f"{final_text(summary)}")
        return
    if status == "failed":
        click.echo(f"run failed: {message}; metrics kept in {run.path}", err=True)
        sys.exit(FAILED_EXIT_CODE)
    click.echo(f"{message}; continue with: sparsetrain run {recipe_file} --out "
               f"{run.path.parent} --name {run.path.name} --resume", err=True)
    # The shell's convention for "stopped by a signal": 128 + its number (130 for SIGINT).
    sys.exit(128 + signal.Signals[signal_name or "SIGINT"].value)
