"""`sparsetrain data fetch NAME`: put a data set where tasks look for it, checksums verified.
`sparsetrain data features IMAGES_DIR --out FEATS.npz`: image features for the caption task."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

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


@command.command("features")
@click.argument("images_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The .npz to write (image_id, file_name, feats), replaced atomically.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per forward pass.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@user_errors
def features_command(images_dir: Path, out: Path, batch_size: int, device: str) -> None:
    """Extract EfficientNet-Lite0 features (1280-d, the shipped COCO recipe) of the images in
    IMAGES_DIR, for the caption task. Needs the `features` extra."""
    from sparsetrain.data.features import extract, list_images, require_packages, save_atomically
    from sparsetrain.train.setup import resolve_device

    require_packages()  # a missing package is named before anything else is looked at
    paths = list_images(images_dir)
    total = len(paths)
    warn = lambda line: click.echo(f"warning: {line}", err=True)  # noqa: E731
    with Progress(TextColumn("[bold]features"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), disable=not sys.stderr.isatty()) as progress:
        bar = progress.add_task("features", total=total)
        arrays = extract(paths, batch_size, resolve_device(device), warn,
                         lambda done: progress.advance(bar, done))
    save_atomically(arrays, out)
    click.echo(f"{out}: features of {len(arrays['image_id'])} of {total} images "
               f"({arrays['feats'].shape[1]}-d)")
