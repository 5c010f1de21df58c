"""Where a task's data lives: the recipe's `data.dir`, else `$SPARSETRAIN_DATA/<folder>`,
else `./data/<folder>`; and a check that says where it looked and how to fill it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from sparsetrain.data.catalog import dataset_with_files
from sparsetrain.errors import ConfigError

DATA_ENV = "SPARSETRAIN_DATA"


def data_dir(configured: str | None, folder: str) -> Path:
    """The folder a task reads: `configured` (recipe data.dir) wins, then the environment."""
    if configured:
        return Path(configured).expanduser()
    root = os.environ.get(DATA_ENV)
    if root:
        return Path(root).expanduser() / folder
    return Path("data") / folder


def require_files(directory: str | Path, names: Iterable[str]) -> list[Path]:
    """The paths of `names` in `directory`; any missing one is a ConfigError that says where
    it looked and how to get the data."""
    directory = Path(directory)
    names = list(names)
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        where = "no such folder" if not directory.is_dir() else f"missing {', '.join(missing)}"
        shown = str(directory) if directory.is_absolute() else \
            f"{directory} (from {Path.cwd()})"
        raise ConfigError(f"data folder {shown}: {where}; {_how_to_get(directory, names)}")
    return [directory / name for name in names]


def _how_to_get(directory: Path, names: list[str]) -> str:
    settings = f"or set data.dir (or {DATA_ENV}) to a folder that holds {', '.join(names)}"
    dataset = dataset_with_files(names)
    if dataset is None:
        return settings
    command = f"sparsetrain data fetch {dataset.name}"
    if directory != data_dir(None, dataset.folder):
        command += f" --data-dir {directory}"
    return f"get them with `{command}` (add --from PATH for a local copy), {settings}"
