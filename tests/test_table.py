"""`sparsetrain table`: the paper's table from run and sweep directories, and from bench JSON."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import write_tiny_ptb
from sparsetrain.cli import main
from sparsetrain.report.runs import find_runs
from sparsetrain.report.table import runs_table


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory, ptb_dir):
    """A real three-run sweep on tiny PTB slices: dense, coarse, coarse then dense."""
    folder = tmp_path_factory.mktemp("table")
    data = write_tiny_ptb(ptb_dir, folder)
    (folder / "base.yaml").write_text(
        f"task: lm\ndevice: cpu\ndata: {{dir: {data}}}\nmodel: {{hidden_size: 16}}\n"
        "train: {steps: 8, batch_size: 4, bptt: 5, log_every: 2}\neval: {batch_size: 4}\n")
    (folder / "sweep.yaml").write_text("""base: base.yaml
variants:
  - {name: dense, set: {method: dense}}
  - {name: coarse, set: {method: {name: coarse, R: 4, S: 2}}}
  - name: mixed
    set:
      schedule:
        - {method: {name: coarse, R: 4, S: 2}, share: 0.75}
        - {method: dense, share: 0.25}
""")
    result = cli("sweep", folder / "sweep.yaml", "--out", folder / "runs")
    assert result.exit_code == 0, result.output
    return folder / "runs"


def test_one_row_per_run_in_sweep_order_with_method_configuration_and_measured_sparsity(
        sweep_root):
    frame = runs_table(find_runs([sweep_root]))
    assert list(frame["Run"]) == ["dense", "coarse", "mixed"]
    assert list(frame["Training method"]) == ["Dense", "Coarse-grained",
                                              "3/4 coarse + 1/4 dense"]
    assert list(frame["Configuration"]) == ["N/A", "R=4, S=2", "R=4, S=2"]
    assert frame["Sparsity"].tolist() == pytest.approx([0.0, 0.5, 0.5])


def test_improvement_is_positive_when_perplexity_is_lower_than_the_baseline(sweep_root):
    frame = runs_table(find_runs([sweep_root]))
    scores = frame["Perplexity (test)"].tolist()
    for score, improvement in zip(scores, frame["Improvement (%)"]):
        assert improvement == pytest.approx((scores[0] - score) / scores[0] * 100)
    assert frame["Backward speedup"][0] == pytest.approx(1.0)


def test_a_named_baseline_is_used_and_an_unknown_one_is_a_one_line_error(sweep_root):
    frame = runs_table(find_runs([sweep_root]), baseline="coarse")
    assert frame["Improvement (%)"][1] == 0
    result = cli("table", sweep_root, "--baseline", "nope")
    assert result.exit_code == 2 and "no run named 'nope'" in result.output


def test_an_incomplete_run_shows_its_status_and_no_score(sweep_root, tmp_path):
    import shutil
    copy = tmp_path / "runs"
    shutil.copytree(sweep_root, copy)
    summary_path = copy / "coarse" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**summary, "status": "running"}))
    frame = runs_table(find_runs([copy]))
    row = frame[frame["Run"] == "coarse"].iloc[0]
    assert row["Status"] == "incomplete (running or killed)"
    assert pd.isna(row["Perplexity (test)"]) and pd.isna(row["Improvement (%)"])


def test_markdown_csv_and_latex_outputs(sweep_root, tmp_path):
    markdown = cli("table", sweep_root)
    assert markdown.exit_code == 0
    assert markdown.output.splitlines()[0].startswith("| Run | Training method |")
    assert "| 3/4 coarse + 1/4 dense |" in markdown.output
    csv = cli("table", sweep_root, "--format", "csv")
    assert len(pd.read_csv(io.StringIO(csv.output))) == 3
    out = tmp_path / "table.tex"
    assert cli("table", sweep_root, "--format", "latex", "--out", out).exit_code == 0
    assert out.read_text().startswith(r"\begin{tabular}") and r"Improvement (\%)" in \
        out.read_text()


def test_single_run_directories_can_be_listed_one_by_one(sweep_root):
    frame = runs_table(find_runs([sweep_root / "mixed", sweep_root / "dense"]))
    assert list(frame["Run"]) == ["mixed", "dense"]


def test_bench_json_gives_the_speedup_table():
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bench.json"
    result = cli("table", bench, "--format", "csv")
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.output))
    assert {"Shape", "Method", "Backward ms", "Speedup vs dense"} <= set(frame.columns)
    assert (frame["Device"] == "NVIDIA H100 80GB HBM3").all()


def test_a_folder_without_runs_is_a_one_line_error(tmp_path):
    result = cli("table", tmp_path)
    assert result.exit_code == 2 and "holds no run directory" in result.output


def test_the_command_line_starts_without_loading_torch():
    # table and plot run where torch is not wanted; only run, sweep children and bench load it.
    probe = "import sys, sparsetrain.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
