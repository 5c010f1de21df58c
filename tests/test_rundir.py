"""The run-directory writer: atomic files, flushed metric lines, truncation on resume."""

from __future__ import annotations

import json

import torch

from sparsetrain.train.rundir import RunDir


def test_files_are_replaced_whole_and_no_temporary_file_is_left(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    run.write_json("summary.json", {"status": "running"})
    run.write_json("summary.json", {"status": "completed"})
    run.save_checkpoint({"step": 3, "weights": torch.ones(2)})
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoint.pt", "summary.json"]
    assert run.status() == "completed"
    assert run.load_checkpoint()["step"] == 3


def test_each_metric_line_is_on_disk_as_soon_as_it_is_written(tmp_path):
    run = RunDir(tmp_path)
    log = run.open_metrics()
    log.write({"step": 1, "loss": 2.5})
    assert json.loads(run.file("metrics.jsonl").read_text()) == {"step": 1, "loss": 2.5}
    log.close()


def test_non_finite_numbers_are_written_as_null(tmp_path):
    log = RunDir(tmp_path).open_metrics()
    log.write({"loss": float("nan"), "layers": [{"cosine": float("inf")}]})
    log.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == \
        {"loss": None, "layers": [{"cosine": None}]}


def test_reopening_keeps_only_the_counted_lines_and_drops_a_torn_one(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    log = RunDir(tmp_path).open_metrics(keep_lines=2)
    assert log.lines == 2
    log.write({"step": 9})
    log.close()
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 9]


def test_a_missing_summary_means_no_status(tmp_path):
    assert RunDir(tmp_path).status() is None
