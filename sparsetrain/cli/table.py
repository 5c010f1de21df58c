"""`sparsetrain table RUN_OR_SWEEP_DIR...`: the paper-style table of runs (or of bench JSON)."""

from __future__ import annotations

from pathlib import Path

import click

from sparsetrain.cli._errors import UserError, user_errors
from sparsetrain.files import write_text_atomically
from sparsetrain.report.formats import FORMATS, render
from sparsetrain.report.runs import SPLITS, find_runs


@click.command("table")
@click.argument("paths", metavar="RUN_OR_SWEEP_DIR... | BENCH.json...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--format", "form", type=click.Choice(FORMATS), default="markdown",
              show_default=True)
@click.option("--baseline", metavar="NAME",
              help="Run the improvement and speedup are relative to (default: the dense run).")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
              help="Which final score to show.")
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@user_errors
def command(paths: tuple[Path, ...], form: str, baseline: str | None, split: str,
            out: Path | None) -> None:
    """One row per run: method, configuration, measured sparsity, score, improvement over the
    baseline, backward ms/step and speedup, wall time, status. JSON files from `sparsetrain
    bench` give the speedup table instead."""
    from sparsetrain.report.table import bench_table, runs_table  # pandas: only when used

    bench = [path for path in paths if path.suffix == ".json"]
    if bench and len(bench) != len(paths):
        raise UserError("give either run/sweep folders or bench JSON files, not both")
    if bench:
        missing = [path for path in bench if not path.is_file()]
        if missing:
            raise UserError(f"{missing[0]}: no such file")
        frame = bench_table(bench)
    else:
        frame = runs_table(find_runs(paths), baseline, split)
    text = render(frame, form)
    if out is None:
        click.echo(text, nl=False)
        return
    write_text_atomically(out, text)
    click.echo(f"wrote {out}")
