"""`sparsetrain plot`: each kind draws a PNG; incomplete runs are marked; mistakes exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparsetrain.cli import main
from sparsetrain.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COARSE = {"name": "coarse", "P": 4, "R": 8, "S": 4}


def plot(*args):
    return CliRunner().invoke(main, ["plot", *map(str, args)])


def fake_run(root: Path, name: str, methods=(("dense", 1.0),), status="completed",
             backward_ms=10.0, final=None, wall=True, steps=100) -> Path:
    """A run directory shaped like `sparsetrain run`'s: summary.json and metrics.jsonl."""
    folder = root / name
    folder.mkdir(parents=True)
    phases, start = [], 0
    for index, (method, share) in enumerate(methods):
        spec = COARSE if method == "coarse" else {"name": method}
        end = start + round(share * 100)
        phases.append({"phase": index, "method": spec, "start": start, "end": end,
                       "steps": end - start, "wall_s": (end - start) * 0.1})
        start = end
    final = final if final is not None else {"valid_perplexity": 120.0, "test_perplexity": 110.0}
    summary = {"status": status, "metric": {"name": "perplexity", "lower_is_better": True},
               "final": final, "steps": steps, "total_steps": 100, "phases": phases,
               "backward_ms_per_step": backward_ms, "dtype": "float32"}
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = []
    for step in range(10, steps + 1, 10):
        sparse = step <= phases[0]["end"] and methods[0][0] != "dense"
        layer = {"sparsity": 0.5 if sparse else 0.0, "kept_energy": 0.7 if sparse else 1.0,
                 "cosine": 0.8 if sparse else 1.0}
        lines.append({"event": "train", "step": step, **layer, "layers": [layer, layer]})
        if step % 50 == 0:
            lines.append({"event": "eval", "step": step, "split": "valid",
                          "perplexity": 300.0 - step, **({"wall_s": step * 0.2} if wall else {})})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot commands draw, kept open for inspection (still saved)."""
    drawn, save = [], plots.save

    def keep(figure, path):
        drawn.append(figure)
        figure.savefig(path, format="png")

    monkeypatch.setattr(plots, "save", keep)
    yield drawn
    for figure in drawn:
        plots.pyplot().close(figure)


def test_every_kind_draws_a_png_from_real_tiny_runs(write_recipe, tmp_path):
    runs = tmp_path / "runs"
    for name, extra in (("dense", ""), ("sparse", """
            schedule:
              - {method: {name: coarse, R: 4, S: 2}, share: 0.75}
              - {method: dense, share: 0.25}
            record: {dnet_steps: [1, 8], dnet_bins: 15}
            """)):
        result = CliRunner().invoke(main, ["run", str(write_recipe(extra, steps=8, name=name)),
                                           "--out", str(runs)])
        assert result.exit_code == 0, result.output
    for kind, paths in (("tradeoff", [runs]), ("curves", [runs]), ("stats", [runs]),
                        ("histogram", [runs / "sparse"])):
        out = tmp_path / f"{kind}.png"
        result = plot(kind, *paths, "--out", out)
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 5000
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_tradeoff_speedup_is_the_dense_runs_backward_time_over_each_runs(tmp_path, figures):
    fake_run(tmp_path, "dense", backward_ms=10.0)
    fake_run(tmp_path, "sparse", (("coarse", 0.75), ("dense", 0.25)), backward_ms=4.0)
    result = plot("tradeoff", tmp_path, "--out", tmp_path / "t.png")
    assert result.exit_code == 0, result.output
    axes = figures[0].axes[0]
    points = sorted(tuple(xy) for c in axes.collections for xy in c.get_offsets())
    assert points == [(1.0, 110.0), (2.5, 110.0)]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "dense", "3/4 coarse + 1/4 dense"]
    assert "backward ms/step over dense's" in axes.get_title()


def test_tradeoff_draws_incomplete_runs_hollow_and_labelled(tmp_path, figures):
    fake_run(tmp_path, "dense")
    fake_run(tmp_path, "cut", (("coarse", 1.0),), status="interrupted", steps=50,
             final={"valid_perplexity": 150.0})
    result = plot("tradeoff", tmp_path, "--split", "valid", "--out", tmp_path / "t.png")
    assert result.exit_code == 0, result.output
    axes = figures[0].axes[0]
    hollow = [c for c in axes.collections if c.get_facecolor().size == 0
              or c.get_facecolor()[0][3] == 0]
    assert len(hollow) == 1 and tuple(hollow[0].get_offsets()[0]) == (1.0, 150.0)
    assert "cut (incomplete: interrupted)" in [t.get_text() for t in axes.texts]
    assert "coarse (incomplete)" in [t.get_text() for t in axes.get_legend().get_texts()]


def test_tradeoff_skips_a_run_without_the_chosen_metric_with_a_note(tmp_path):
    fake_run(tmp_path, "dense")
    fake_run(tmp_path, "cut", status="interrupted", final={"valid_perplexity": 150.0})
    result = plot("tradeoff", tmp_path, "--out", tmp_path / "t.png")
    assert result.exit_code == 0, result.output
    assert "note: cut (interrupted): no test_perplexity in summary.json; skipped" in result.output


def test_bench_speedup_weights_each_phases_time_by_its_share_of_steps(tmp_path, figures):
    fake_run(tmp_path / "runs", "sparse", (("coarse", 0.75), ("dense", 0.25)))
    row = {"shape": "ptb", "hidden": 16, "batch": 4, "steps": 5, "layers": 2,
           "dtype": "float32"}
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": [
        {**row, "method": "dense", "sparsity": 0.0, "backward_ms": 10.0},
        {**row, "method": "coarse", "sparsity": 0.5, "spec": COARSE, "backward_ms": 5.0}]}))
    result = plot("tradeoff", tmp_path / "runs", "--bench", bench, "--out", tmp_path / "t.png")
    assert result.exit_code == 0, result.output
    axes = figures[0].axes[0]
    [(speedup, _)] = [tuple(xy) for c in axes.collections for xy in c.get_offsets()]
    assert speedup == pytest.approx(10.0 / (0.75 * 5.0 + 0.25 * 10.0))
    assert "bench bench.json (ptb float32)" in axes.get_title()


def test_curves_use_logged_wall_times_and_estimate_them_for_older_runs(tmp_path, figures):
    fake_run(tmp_path, "new")
    fake_run(tmp_path, "old", (("coarse", 0.5), ("dense", 0.5)), wall=False)
    result = plot("curves", tmp_path, "--out", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert "old: eval records carry no wall_s" in result.output
    by_step, by_time = figures[0].axes
    new, old = by_time.get_lines()[:2]
    assert list(new.get_xdata()) == [10.0, 20.0]  # wall_s of the eval records
    assert list(old.get_xdata()) == pytest.approx([5.0, 10.0])  # 0.1 s per step
    assert [line.get_xdata()[0] for line in by_step.get_lines()[2:]] == [50]  # the switch


def test_stats_draw_each_statistic_per_layer_and_mark_incomplete_runs(tmp_path, figures):
    fake_run(tmp_path, "sparse", (("coarse", 0.75), ("dense", 0.25)), status="failed", steps=60)
    result = plot("stats", tmp_path, "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    panels = figures[0].axes
    assert [axes.get_ylabel() for axes in panels] == ["sparsity", "kept energy", "cosine"]
    labels = [line.get_label() for line in panels[0].get_lines() if line.get_label()[0] != "_"]
    assert labels == ["sparse (incomplete: failed), layer 0", "sparse (incomplete: failed), layer 1"]
    assert list(panels[0].get_lines()[0].get_ydata()) == [0.5] * 6


@pytest.mark.parametrize("args,message", [
    (["curves", "{tmp}/nowhere"], "nowhere: no such folder"),
    (["curves", "{tmp}/empty"], "empty: holds no run directory"),
    (["tradeoff", "{tmp}/runs", "--baseline", "nope"], "--baseline: no run named 'nope'"),
    (["tradeoff", "{tmp}/runs/sparse"], "no dense run"),
    (["histogram", "{tmp}/runs/dense"], "no dnet histograms recorded"),
    (["histogram", "{tmp}/runs"], "plot histogram takes one run directory, got 2 runs"),
    (["tradeoff", "{tmp}/runs", "--step", "3"], "--step applies to plot histogram only"),
])
def test_mistakes_exit_2_with_one_line(tmp_path, args, message):
    fake_run(tmp_path / "runs", "dense")
    fake_run(tmp_path / "runs", "sparse", (("coarse", 1.0),))
    (tmp_path / "empty").mkdir()
    out = tmp_path / "x.png"
    result = plot(*[arg.format(tmp=tmp_path) for arg in args], "--out", out)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output
    assert not out.exists()
