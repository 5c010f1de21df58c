"""A real `sparsetrain run` process stopped by SIGTERM saves a checkpoint, says it was
interrupted, and `--resume` finishes it with each step logged once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from sparsetrain.cli import main

LAUNCH = "import sys; from sparsetrain.cli import main; sys.exit(main())"


def test_sigterm_interrupts_the_run_and_resume_completes_it(write_recipe, tmp_path):
    recipe = write_recipe(steps=1000)
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "run", str(recipe), "--out", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = runs / "tiny" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never logged"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stderr and "--resume" in stderr
    summary = json.loads((runs / "tiny" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 1000

    result = CliRunner().invoke(main, ["run", str(recipe), "--out", str(runs), "--resume"])
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()
             if json.loads(line)["event"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 1000
    assert json.loads((runs / "tiny" / "summary.json").read_text())["steps"] == 1000
