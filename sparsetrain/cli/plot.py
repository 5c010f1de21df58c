"""`sparsetrain plot KIND RUN_OR_SWEEP_DIR... --out FILE.png`: figures from run directories."""

from __future__ import annotations

from pathlib import Path

import click

from sparsetrain.cli._errors import UserError, user_errors
from sparsetrain.report.runs import SPLITS

KINDS = ("tradeoff", "curves", "stats", "histogram")
# the kind each option applies to: a misplaced option is a mistake, not silently ignored
OPTION_KIND = {"--baseline": "tradeoff", "--bench": "tradeoff", "--bench-shape": "tradeoff",
               "--split": "tradeoff", "--step": "histogram", "--absolute": "histogram"}


@click.command("plot")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("paths", nargs=-1, required=True, metavar="RUN_OR_SWEEP_DIR...",
                type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The PNG to write (replaced atomically).")
@click.option("--baseline", help="tradeoff: the run whose backward time is speedup 1 "
              "(default: the run with one dense phase).")
@click.option("--bench", type=click.Path(dir_okay=False, path_type=Path),
              help="tradeoff: take speedups from this `sparsetrain bench` JSON instead of the "
                   "runs' own backward timings.")
@click.option("--bench-shape", help="tradeoff with --bench: the bench shape to use (default: "
              "the one matching the runs' hidden, batch, bptt, layers and dtype).")
@click.option("--split", type=click.Choice(SPLITS), default="test",
              show_default=True, help="tradeoff: which final metric is the quality.")
@click.option("--step", "steps", multiple=True, type=int,
              help="histogram: a recorded step to show (repeatable; default: all).")
@click.option("--absolute", is_flag=True,
              help="histogram: dnet values on the x axis (default: divided by max |dnet|).")
@user_errors
def command(kind, paths, out, baseline, bench, bench_shape, split, steps, absolute):
    """Draw KIND from run or sweep directories into a PNG.

    \b
    tradeoff   test metric vs backward speedup, one marker per schedule (paper Fig. 3)
    curves     valid metric vs step and vs wall time, phase switches marked
    stats      sparsity, kept energy and cosine per layer vs step
    histogram  dnet histograms per gate of one run that set record.dnet_steps
    """
    given = {"--baseline": baseline, "--bench": bench, "--bench-shape": bench_shape,
             "--split": split != "test", "--step": steps, "--absolute": absolute}
    for flag, value in given.items():
        if value and kind != OPTION_KIND[flag]:
            raise UserError(f"{flag} applies to plot {OPTION_KIND[flag]} only")
    if bench_shape and not bench:
        raise UserError("--bench-shape needs --bench FILE.json")
    from sparsetrain.report import plot_curves, plot_histogram, plot_tradeoff
    from sparsetrain.report.runs import find_runs

    runs = find_runs(paths)
    if kind == "tradeoff":
        notes = plot_tradeoff.tradeoff(runs, out, baseline, bench, bench_shape, split)
    elif kind == "curves":
        notes = plot_curves.curves(runs, out)
    elif kind == "stats":
        notes = plot_curves.stats(runs, out)
    else:
        notes = plot_histogram.histogram(runs, out, steps, absolute)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out}")
