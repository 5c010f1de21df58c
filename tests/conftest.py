"""Shared fixtures: the real PTB files, and tiny PTB-format slices of them for fast runs."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")


def shared_data() -> Path:
    """../shared/data beside the checkout (CI and here), or $SPARSETRAIN_SHARED."""
    configured = os.environ.get("SPARSETRAIN_SHARED")
    if configured:
        return Path(configured) / "data" if (Path(configured) / "data").is_dir() \
            else Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_dataset(name: str, files: tuple[str, ...]) -> Path:
    """The shared data set folder `name`; the test is skipped when any of `files` is missing."""
    folder = shared_data() / name
    if not all((folder / file).is_file() for file in files):
        pytest.skip(f"{name} files not found in {folder} (set SPARSETRAIN_SHARED)")
    return folder


@pytest.fixture(scope="session")
def ptb_dir() -> Path:
    return shared_dataset("ptb", PTB_FILES)


def write_tiny_ptb(ptb_dir: Path, parent: Path) -> Path:
    """parent/ptb: the first lines of each real PTB split, in PTB format (a few thousand
    tokens)."""
    folder = parent / "ptb"
    folder.mkdir()
    for name, lines in zip(PTB_FILES, (300, 30, 30)):
        with open(ptb_dir / name, encoding="utf-8") as source:
            head = [next(source) for _ in range(lines)]
        (folder / name).write_text("".join(head), encoding="utf-8")
    return folder


@pytest.fixture
def tiny_ptb(ptb_dir: Path, tmp_path: Path) -> Path:
    return write_tiny_ptb(ptb_dir, tmp_path)


TINY_RECIPE = """
    task: lm
    seed: 7
    device: cpu
    data: {{dir: {data}}}
    model: {{hidden_size: 16, num_layers: 2}}
    train: {{steps: {steps}, batch_size: 4, bptt: 5, log_every: 5, dropout: 0.1, init_scale: 0.1}}
    eval: {{batch_size: 4}}
"""


@pytest.fixture
def write_recipe(tmp_path: Path, tiny_ptb: Path):
    """Write a tiny lm recipe (plus extra YAML lines) to tmp_path; returns its path."""

    def write(extra: str = "", steps: int = 24, name: str = "tiny") -> Path:
        text = textwrap.dedent(TINY_RECIPE).format(data=tiny_ptb, steps=steps)
        path = tmp_path / f"{name}.yaml"
        path.write_text(text + textwrap.dedent(extra))
        return path

    return write
