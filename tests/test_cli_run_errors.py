"""Every user mistake given to `sparsetrain run` is one line, exit code 2, no traceback, and
no run directory is created or changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sparsetrain.cli import main


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs folder that already holds another run, which no mistake may touch."""
    other = tmp_path / "runs" / "other"
    other.mkdir(parents=True)
    (other / "summary.json").write_text('{"status": "completed"}\n')
    return tmp_path / "runs"


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def refused(args: list, runs: Path, *expected: str) -> None:
    before, entries = contents(runs), sorted(p.name for p in runs.iterdir())
    result = CliRunner().invoke(main, ["run", *map(str, args), "--out", str(runs)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    assert contents(runs) == before
    assert sorted(p.name for p in runs.iterdir()) == entries


def test_a_missing_recipe_file(runs, tmp_path):
    refused([tmp_path / "nope.yaml"], runs, "nope.yaml", "not found")


def test_malformed_yaml(runs, tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("task: lm\ntrain: {steps: 3\n")
    refused([recipe], runs, "bad.yaml")


def test_an_unknown_key(runs, write_recipe):
    refused([write_recipe("modle: {hidden_size: 8}\n")], runs, "modle", "valid:")


def test_a_wrong_type(runs, write_recipe):
    refused([write_recipe(), "--set", "train.batch_size=many"], runs, "train.batch_size")


def test_an_invalid_method_parameter(runs, write_recipe):
    refused([write_recipe("method: {name: coarse, R: 4, S: 4}\n")], runs, "method.S", "< R")


def test_a_missing_data_file(runs, write_recipe, tiny_ptb):
    (tiny_ptb / "ptb.valid.txt").unlink()
    refused([write_recipe()], runs, "ptb.valid.txt", str(tiny_ptb))


def test_a_corrupt_data_file(runs, write_recipe, tiny_ptb):
    (tiny_ptb / "ptb.train.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary")
    refused([write_recipe()], runs, "ptb.train.txt", "corrupt")


def test_an_empty_data_file(runs, write_recipe, tiny_ptb):
    (tiny_ptb / "ptb.test.txt").write_text("\n\n")
    refused([write_recipe()], runs, "ptb.test.txt", "no words")


def test_data_too_small_for_one_batch(runs, write_recipe):
    refused([write_recipe(), "--set", "train.batch_size=5000"], runs,
            "ptb.train.txt", "train.batch_size", "train.bptt")


def test_set_on_a_path_that_does_not_exist(runs, write_recipe):
    refused([write_recipe(), "--set", "train.lrr=0.5"], runs, "train.lrr", "did you mean lr")


def test_resume_with_nothing_to_resume(runs, write_recipe):
    refused([write_recipe(), "--resume"], runs, "nothing to resume")


def test_resume_of_a_folder_without_a_checkpoint(runs, write_recipe):
    (runs / "half").mkdir()
    (runs / "half" / "metrics.jsonl").write_text("")
    refused([write_recipe(), "--resume", "--name", "half"], runs, "nothing to resume")


def test_tied_weights_with_unequal_widths(runs, write_recipe):
    refused([write_recipe("", name="tied"), "--set", "model.tied=true",
             "--set", "model.embedding_size=8"], runs, "model.tied", "model.embedding_size")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_device_cuda_without_a_gpu(runs, write_recipe):
    refused([write_recipe(), "--device", "cuda"], runs, "cuda", "--device cpu")
