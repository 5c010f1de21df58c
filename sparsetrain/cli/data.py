"""`sparsetrain data fetch NAME`: put a data set where tasks look for it, checksums verified."""

from __future__ import annotations

from pathlib import Path

import click

from sparsetrain.cli._errors import user_errors
from sparsetrain.data import DATASETS, fetch_dataset


@click.group("data")
def command() -> None:
    """Get the data sets that tasks read."""


@command.command("fetch")
@click.argument("dataset", metavar="NAME")
@click.option("--from", "source", type=click.Path(path_type=Path), default=None,
              help="Import from a local folder or .tgz/.tar.gz/.zip archive instead of "
                   "downloading.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where to place the files "
                   "(default: $SPARSETRAIN_DATA/NAME, else ./data/NAME).")
@user_errors
def fetch_command(dataset: str, source: Path | None, data_dir: Path | None) -> None:
    """Download data set NAME (or import it --from a local copy) and verify every file."""
    click.echo(fetch_dataset(dataset, source, data_dir, log=lambda line: click.echo(line, err=True)))


fetch_command.help = (fetch_command.help or "") + f"\n\nKnown data sets: {', '.join(DATASETS)}."
