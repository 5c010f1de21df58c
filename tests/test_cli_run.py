"""`sparsetrain run`: a tiny PTB run end to end, its run directory, schedules, resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch
import yaml
from click.testing import CliRunner

from sparsetrain.cli import main
from sparsetrain.tasks.lm import LanguageModel

COARSE_THEN_DENSE = """
    schedule:
      - {method: {name: coarse, R: 4, S: 2}, share: 0.75}
      - {method: dense, share: 0.25}
"""
TIMING_KEYS = {"tokens_per_s", "backward_ms", "wall_s"}


def run(*args: str):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def metric_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def rounded(value):
    """Floats to 6 significant digits: a resume merges gradient statistics across the
    checkpoint in another order of float additions."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def without_timing(lines: list[dict]) -> list[dict]:
    return [rounded({k: v for k, v in line.items() if k not in TIMING_KEYS})
            for line in lines]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_run_completes_and_writes_every_file_of_the_run_directory(write_recipe, tmp_path):
    result = run(write_recipe(), "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "env.json", "metrics.jsonl", "recipe.yaml", "summary.json"]
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert recipe["schedule"] == [{"method": {"name": "dense"}, "share": 1.0, "restart_lr": False}]
    assert recipe["train"]["steps"] == 24 and "lr_decay" in recipe["train"]
    env = json.loads((run_dir / "env.json").read_text())
    assert {"git", "python", "torch", "cupy", "cuda", "gpu", "seed", "command"} <= set(env)
    assert {"commit", "dirty"} <= set(env["git"]) and env["seed"] == 7
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 24
    assert set(summary["final"]) == {"valid_perplexity", "test_perplexity"}
    assert summary["backward_ms_per_step"] > 0
    assert summary["wall_s"] >= summary["train_wall_s"] > 0
    assert [p["wall_s"] > 0 for p in summary["phases"]] == [True]
    assert "completed 24 steps" in result.output
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert {"model", "optimizer", "rng", "step", "epoch_position", "carried_state",
            "carried_state_policy", "metric_lines"} <= set(checkpoint)
    assert checkpoint["step"] == 24
    assert checkpoint["metric_lines"] == len((run_dir / "metrics.jsonl").read_text().splitlines())


def test_each_metrics_line_is_one_json_object_and_steps_are_logged_every_log_every(
        write_recipe, tmp_path):
    run(write_recipe(), "--out", tmp_path / "runs")
    lines = metric_lines(tmp_path / "runs" / "tiny")
    train = [line for line in lines if line["event"] == "train"]
    assert [line["step"] for line in train] == [5, 10, 15, 20, 24]
    for line in train:
        assert {"step", "epoch", "phase", "method", "loss", "lr", "sparsity", "kept_energy",
                "cosine", "layers", "tokens_per_s"} <= set(line)
        assert len(line["layers"]) == 2 and line["sparsity"] == 0.0
    evals = [(line["split"], line["step"]) for line in lines if line["event"] == "eval"]
    assert evals == [("valid", 24), ("test", 24)]


def test_a_schedule_switches_the_method_at_the_phase_boundary(write_recipe, tmp_path):
    result = run(write_recipe(COARSE_THEN_DENSE), "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    train = [line for line in metric_lines(tmp_path / "runs" / "tiny")
             if line["event"] == "train"]
    assert [(line["step"], line["method"], line["phase"]) for line in train] == [
        (5, "coarse", 0), (10, "coarse", 0), (15, "coarse", 0), (18, "coarse", 0),
        (20, "dense", 1), (24, "dense", 1)]
    assert all(line["sparsity"] == 0.5 for line in train if line["method"] == "coarse")
    assert all(line["sparsity"] == 0.0 for line in train if line["method"] == "dense")
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    assert [(p["start"], p["end"]) for p in summary["phases"]] == [(0, 18), (18, 24)]


def test_a_schedule_does_not_change_the_number_of_steps(write_recipe, tmp_path):
    dense = run(write_recipe(), "--out", tmp_path / "runs")
    mixed = run(write_recipe(COARSE_THEN_DENSE, name="mixed"), "--out", tmp_path / "runs")
    assert dense.exit_code == mixed.exit_code == 0
    for name in ("tiny", "mixed"):
        summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
        assert summary["steps"] == summary["total_steps"] == 24


def test_an_existing_run_directory_is_refused_and_left_untouched(write_recipe, tmp_path):
    recipe = write_recipe()
    run(recipe, "--out", tmp_path / "runs")
    before = snapshot(tmp_path / "runs" / "tiny")
    result = run(recipe, "--out", tmp_path / "runs")
    assert result.exit_code == 2
    assert "--resume" in result.output and "--name" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(tmp_path / "runs" / "tiny") == before


def test_dry_run_prints_the_resolved_recipe_and_plan_and_creates_nothing(write_recipe,
                                                                          tmp_path):
    result = run(write_recipe(COARSE_THEN_DENSE), "--out", tmp_path / "runs", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "lr_decay: 0.8" in result.output
    assert "phase 0: coarse (P=4, R=4, S=2): steps 0..18 (18 steps)" in result.output
    assert "phase 1: dense: steps 18..24 (6 steps)" in result.output
    assert not (tmp_path / "runs").exists()


def interrupt_at(monkeypatch, call: int) -> None:
    """Send this process SIGINT during the `call`-th training step, as a user's Ctrl-C."""
    original, calls = LanguageModel.train_step, []

    def step(self, model, index):
        calls.append(index)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, model, index)

    monkeypatch.setattr(LanguageModel, "train_step", step)


def test_resume_after_an_interrupt_ends_like_an_uninterrupted_run(write_recipe, tmp_path,
                                                                   monkeypatch):
    recipe = write_recipe(COARSE_THEN_DENSE)
    whole = run(recipe, "--out", tmp_path / "runs", "--name", "whole")
    assert whole.exit_code == 0, whole.output
    with monkeypatch.context() as patch:
        interrupt_at(patch, 13)
        stopped = run(recipe, "--out", tmp_path / "runs", "--name", "cut")
    assert stopped.exit_code == 130
    assert "--resume" in stopped.output
    cut = tmp_path / "runs" / "cut"
    assert json.loads((cut / "summary.json").read_text())["status"] == "interrupted"
    assert json.loads((cut / "summary.json").read_text())["steps"] == 13
    resumed = run(recipe, "--out", tmp_path / "runs", "--name", "cut", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert without_timing(metric_lines(cut)) == \
        without_timing(metric_lines(tmp_path / "runs" / "whole"))
    summaries = [json.loads((tmp_path / "runs" / n / "summary.json").read_text())
                 for n in ("cut", "whole")]
    assert summaries[0]["final"] == summaries[1]["final"]
    assert summaries[0]["steps"] == summaries[1]["steps"] == 24


def test_resume_drops_metric_lines_written_after_the_checkpoint(write_recipe, tmp_path,
                                                                 monkeypatch):
    recipe = write_recipe()
    with monkeypatch.context() as patch:
        interrupt_at(patch, 7)
        run(recipe, "--out", tmp_path / "runs")
    metrics = tmp_path / "runs" / "tiny" / "metrics.jsonl"
    with open(metrics, "a") as handle:  # a line a killed process wrote after its checkpoint
        handle.write(json.dumps({"event": "train", "step": 10}) + "\n")
    assert run(recipe, "--out", tmp_path / "runs", "--resume").exit_code == 0
    steps = [line["step"] for line in metric_lines(tmp_path / "runs" / "tiny")
             if line["event"] == "train"]
    assert steps == [5, 10, 15, 20, 24]


def test_resume_of_a_completed_run_says_so_and_exits_0(write_recipe, tmp_path):
    recipe = write_recipe()
    run(recipe, "--out", tmp_path / "runs")
    before = snapshot(tmp_path / "runs" / "tiny")
    result = run(recipe, "--out", tmp_path / "runs", "--resume")
    assert result.exit_code == 0
    assert "already completed" in result.output
    assert snapshot(tmp_path / "runs" / "tiny") == before


def test_resume_with_a_changed_recipe_is_refused(write_recipe, tmp_path, monkeypatch):
    recipe = write_recipe()
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        run(recipe, "--out", tmp_path / "runs")
    before = snapshot(tmp_path / "runs" / "tiny")
    result = run(recipe, "--out", tmp_path / "runs", "--resume", "--set", "train.lr=0.5")
    assert result.exit_code == 2 and "differs" in result.output
    assert snapshot(tmp_path / "runs" / "tiny") == before


def test_a_nan_loss_stops_the_run_as_failed_and_keeps_its_metrics(write_recipe, tmp_path):
    # lr 1e38 without clipping overflows float32 weights on the second step.
    result = run(write_recipe(), "--out", tmp_path / "runs", "--set", "train.lr=1e38",
                 "--set", "train.clip=null", "--set", "train.log_every=1")
    assert result.exit_code == 1
    assert "diverged" in result.output
    run_dir = tmp_path / "runs" / "tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "diverged" in summary["message"]
    assert [(line["event"], line["step"]) for line in metric_lines(run_dir)] == [
        ("train", 1), ("failed", 2)]


def test_the_device_flag_overrides_the_recipe_and_is_recorded(write_recipe, tmp_path):
    recipe = write_recipe(name="auto")
    recipe.write_text(recipe.read_text().replace("device: cpu", "device: auto"))
    result = run(recipe, "--out", tmp_path / "runs", "--device", "cpu")
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "runs" / "auto" / "recipe.yaml").read_text())
    assert saved["device"] == "cpu"
    assert json.loads((tmp_path / "runs" / "auto" / "env.json").read_text())["device"] == "cpu"


def test_an_interrupt_at_the_last_step_resumes_to_just_the_test_evaluation(write_recipe,
                                                                          tmp_path,
                                                                          monkeypatch):
    recipe = write_recipe()
    with monkeypatch.context() as patch:
        interrupt_at(patch, 24)
        assert run(recipe, "--out", tmp_path / "runs").exit_code == 130
    assert run(recipe, "--out", tmp_path / "runs", "--resume").exit_code == 0
    events = [(line["event"], line.get("split"), line["step"])
              for line in metric_lines(tmp_path / "runs" / "tiny")]
    assert events[-3:] == [("train", None, 24), ("eval", "valid", 24), ("eval", "test", 24)]
    assert [e for e in events if e[0] == "eval"] == [("eval", "valid", 24), ("eval", "test", 24)]
