"""`sparsetrain sweep`: expansion, names, validation first, skip / resume, failure isolation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sparsetrain import ConfigError
from sparsetrain.cli import main
from sparsetrain.sweep import load_sweep


def write_sweep(folder: Path, base: Path, body: str) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(f"base: {base.name}\n" + textwrap.dedent(body))
    return path


def sweep(*args) -> object:
    return CliRunner().invoke(main, ["sweep", *map(str, args)])


def test_a_grid_expands_to_the_cartesian_product_named_by_the_varied_values(write_recipe,
                                                                           tmp_path):
    path = write_sweep(tmp_path, write_recipe(), """
        grid:
          method.name: [coarse]
          method.R: [4, 8]
          method.S: [1, 2]
    """)
    runs = load_sweep(path).runs
    assert [run.name for run in runs] == ["coarse-R4-S1", "coarse-R4-S2", "coarse-R8-S1",
                                          "coarse-R8-S2"]
    assert runs[3].recipe.schedule[0].method == {"name": "coarse", "P": 4, "R": 8, "S": 2}


def test_variants_run_at_every_grid_point_and_unnamed_variants_are_named_by_their_values(
        write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), """
        set: {train.lr: 0.5}
        variants:
          - {name: dense, set: {method: dense}}
          - set:
              schedule:
                - {method: {name: fine, My: 2, K: 1}, share: 0.75}
                - {method: dense, share: 0.25}
        grid:
          train.clip: [1.0, 2.0]
    """)
    runs = load_sweep(path).runs
    assert [run.name for run in runs] == [
        "dense-clip1.0", "dense-clip2.0",
        "fine-My2-K1_0.75+dense_0.25-clip1.0", "fine-My2-K1_0.75+dense_0.25-clip2.0"]
    assert all(run.recipe.train.lr == 0.5 for run in runs)
    assert runs[3].recipe.train.clip == 2.0
    assert [phase.share for phase in runs[3].recipe.schedule] == [0.75, 0.25]


def test_names_are_the_same_on_every_load(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), "grid: {train.lr: [0.5, 1.0]}\n")
    assert [r.name for r in load_sweep(path).runs] == [r.name for r in load_sweep(path).runs]


def test_every_run_is_validated_before_any_starts(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), """
        variants:
          - {name: good, set: {method: dense}}
          - {name: bad-s, set: {method: {name: coarse, R: 4, S: 4}}}
          - {name: bad-lr, set: {train.lr: -1}}
    """)
    result = sweep(path, "--out", tmp_path / "runs")
    assert result.exit_code == 2
    assert "run bad-s: " in result.output and "run bad-lr: " in result.output
    assert not (tmp_path / "runs").exists()


def test_a_problem_of_the_base_recipe_is_reported_once_for_every_run(write_recipe, tmp_path):
    base = write_recipe()
    base.write_text(base.read_text() + "colour: blue\n")
    path = write_sweep(tmp_path, base, "grid: {train.lr: [0.5, 1.0, 2.0]}\n")
    result = sweep(path, "--out", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.output.count("colour") == 1 and "every run: " in result.output


def test_a_missing_sweep_file_is_named_as_one(tmp_path):
    result = sweep(tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: sweep file not found" in result.output


def test_two_runs_with_one_name_are_refused(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), """
        variants:
          - {name: same, set: {method: dense}}
          - {name: same, set: {train.lr: 0.5}}
    """)
    with pytest.raises(ConfigError, match="two runs are named 'same'"):
        load_sweep(path)


def test_an_unknown_sweep_key_is_one_line_and_exit_code_2(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), "grids: {method.R: [4]}\n")
    result = sweep(path)
    assert result.exit_code == 2
    assert "unknown key grids" in result.output and "Traceback" not in result.output


def test_runs_complete_a_failing_run_does_not_stop_the_others_and_the_root_lists_them(
        write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(steps=6), """
        variants:
          - {name: dense, set: {method: dense}}
          - {name: no-data, set: {data.dir: /nonexistent/ptb}}
          - {name: coarse, set: {method: {name: coarse, R: 4, S: 2}}}
    """)
    root = tmp_path / "runs"
    result = sweep(path, "--out", root, "--jobs", "2")
    assert result.exit_code == 1, result.output
    assert "2 completed" in result.output and "1 failed" in result.output
    assert "no-data" in result.output and "/nonexistent/ptb" in result.output
    for name in ("dense", "coarse"):
        assert json.loads((root / name / "summary.json").read_text())["status"] == "completed"
    listed = yaml.safe_load((root / "sweep.yaml").read_text())
    assert [run["name"] for run in listed["runs"]] == ["dense", "no-data", "coarse"]


def test_a_second_sweep_skips_completed_runs(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(steps=4), "variants: [{name: dense}]\n")
    root = tmp_path / "runs"
    assert sweep(path, "--out", root).exit_code == 0
    before = (root / "dense" / "metrics.jsonl").read_text()
    result = sweep(path, "--out", root)
    assert result.exit_code == 0
    assert "skipped" in result.output
    assert (root / "dense" / "metrics.jsonl").read_text() == before


def test_a_killed_sweep_resumes_its_interrupted_runs(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(steps=3000), "variants: [{name: long}]\n")
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "sparsetrain", "sweep", str(path), "--out", str(root)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    metrics = root / "long" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and process.poll() is None, "run never started"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "continue with: sparsetrain sweep" in output
    summary = json.loads((root / "long" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] < 3000
    result = sweep(path, "--out", root, "--set", "train.log_every=7")
    assert result.exit_code == 1, result.output  # the --set changed the recipe: resume refuses, run fails
    assert "differs from" in result.output
    result = sweep(path, "--out", root)
    assert result.exit_code == 0, result.output
    assert json.loads((root / "long" / "summary.json").read_text())["steps"] == 3000
    assert "--resume" in (root / "logs" / "long.log").read_text()


def test_dry_run_says_what_would_happen_and_creates_nothing(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), "grid: {train.lr: [0.5, 1.0]}\n")
    result = sweep(path, "--out", tmp_path / "runs", "--dry-run")
    assert result.exit_code == 0
    assert "lr0.5: start" in result.output and "lr1.0: start" in result.output
    assert not (tmp_path / "runs").exists()


def test_devices_must_be_gpu_indices(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(), "grid: {method.name: [dense]}\n")
    result = sweep(path, "--devices", "0,gpu1")
    assert result.exit_code == 2 and "--devices" in result.output


RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SHIPPED_SWEEPS = sorted(path.name for path in RECIPES.glob("*.yaml")
                        if "base" in (yaml.safe_load(path.read_text()) or {}))


def test_the_paper_table_sweeps_are_shipped():
    assert {"table1.yaml", "table2.yaml", "table3.yaml", "table4.yaml"} <= set(SHIPPED_SWEEPS)


@pytest.mark.parametrize("name", SHIPPED_SWEEPS)
def test_the_shipped_sweeps_expand_and_validate(name):
    path = RECIPES / name
    runs = load_sweep(path).runs
    assert runs and len({run.name for run in runs}) == len(runs)
    assert "sparsetrain sweep recipes/" + name in path.read_text().split("\n\n")[0]


def test_runs_are_spread_over_the_listed_devices(write_recipe, tmp_path):
    path = write_sweep(tmp_path, write_recipe(steps=2), "grid: {train.lr: [0.5, 1.0, 2.0]}\n")
    result = sweep(path, "--out", tmp_path / "runs", "--jobs", "3", "--devices", "3,5")
    assert result.exit_code == 0, result.output
    assert "lr0.5: running on GPU 3" in result.output
    assert "lr1.0: running on GPU 5" in result.output
    assert "lr2.0: running on GPU 3" in result.output
