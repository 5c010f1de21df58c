"""`sparsetrain sweep SWEEP.yaml`: every run of a sweep, several at once, resumable."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sparsetrain.cli._errors import UserError, user_errors
from sparsetrain.report.runs import SWEEP_FILE
from sparsetrain.sweep import load_sweep
from sparsetrain.sweep.runner import RunState, SweepRunner
from sparsetrain.files import write_text_atomically

STATE_STYLE = {"waiting": "dim", "running": "cyan", "completed": "green", "skipped": "green",
               "failed": "red", "interrupted": "yellow"}


@click.command("sweep")
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Change one recipe value in every run (after the sweep's own settings), "
              "e.g. a shorter schedule: --set train.epochs=16.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at a time.")
@click.option("--devices", metavar="0,1,...",
              help="GPU indices to spread the runs over (CUDA_VISIBLE_DEVICES per run).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Sweep root folder (default: runs/<sweep file stem>).")
@click.option("--dry-run", is_flag=True,
              help="Validate every run and print what would start, resume or be skipped.")
@user_errors
def command(sweep_file: Path, overrides: tuple[str, ...], jobs: int, devices: str | None, out: Path | None,
            dry_run: bool) -> None:
    """Run every configuration of SWEEP; completed runs are skipped, killed ones resumed."""
    spec = load_sweep(sweep_file, overrides)
    root = out or Path("runs") / sweep_file.stem
    device_list = _devices(devices)
    runner = SweepRunner(spec, root, jobs, device_list)
    if dry_run:
        for state in runner.states:
            overrides = " ".join(f"--set '{text}'" for text in state.run.overrides)
            click.echo(f"{state.run.name}: {state.action}"
                       f"{f' ({state.note})' if state.note else ''}  {overrides}")
        click.echo(f"# {len(runner.states)} runs of {spec.base} under {root}; dry run: "
                   "nothing created")
        return
    write_text_atomically(root / SWEEP_FILE, yaml.safe_dump(spec.plain(), sort_keys=False))
    _run_with_display(runner)
    _report(runner, sweep_file, root)


def _devices(text: str | None) -> list[str] | None:
    if text is None:
        return None
    devices = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in devices):
        raise UserError(f"--devices: expected GPU indices like 0,1, got {text!r}")
    return devices


def _run_with_display(runner: SweepRunner) -> None:
    live = sys.stdout.isatty()
    previous = {}

    def stop(number: int, frame: Any) -> None:
        runner.request_stop(signal.Signals(number).name)

    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, stop)
    try:
        if live:
            _live(runner)
        else:
            runner.on_change = _plain_line
            runner.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _plain_line(state: RunState) -> None:
    device = f" on GPU {state.device}" if state.device and state.state == "running" else ""
    click.echo(f"{state.run.name}: {state.state}{device}"
               f"{f' ({state.note})' if state.note else ''}")


def _live(runner: SweepRunner) -> None:
    overall = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())
    bar = overall.add_task("runs", total=len(runner.states))

    def render() -> Group:
        done = sum(s.state in ("completed", "skipped", "failed") for s in runner.states)
        overall.update(bar, completed=done)
        table = Table(box=None, pad_edge=False)
        for column in ("run", "state", "step", "GPU", "note"):
            table.add_column(column)
        for state in runner.states:
            steps = f"{state.step}/{state.total_steps}" if state.total_steps else ""
            table.add_row(state.run.name,
                          f"[{STATE_STYLE[state.state]}]{state.state}[/]", steps,
                          state.device or "", state.note)
        return Group(overall, table)

    with Live(render(), console=Console(), refresh_per_second=2) as display:
        # Every pass of the runner ends in a tick, after any state changes: one redraw each.
        runner.on_tick = lambda: display.update(render())
        runner.run()


def _report(runner: SweepRunner, sweep_file: Path, root: Path) -> None:
    counts: dict[str, int] = {}
    for state in runner.states:
        counts[state.state] = counts.get(state.state, 0) + 1
    text = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    click.echo(f"sweep {root}: {text}")
    for state in runner.states:
        if state.state == "failed":
            click.echo(f"  failed: {state.run.name}: {state.note} "
                       f"(log: {runner.log_path(state.run)})", err=True)
    if runner.stop_signal:
        click.echo(f"stopped by {runner.stop_signal}; continue with: sparsetrain sweep "
                   f"{sweep_file} --out {root}", err=True)
        sys.exit(128 + signal.Signals[runner.stop_signal].value)
    if counts.get("failed"):
        sys.exit(1)
