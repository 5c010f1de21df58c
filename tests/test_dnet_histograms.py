"""dnet histograms (record.dnet_steps): what the layer records, the counts, the run file."""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner

import slow_reference
from sparsetrain.cli import main
from test_cli_run import interrupt_at, rounded
from sparsetrain.nn import LSTM
from sparsetrain.train.dnet_histograms import GATES, LayerRecorder, gate_histogram

STEPS, BATCH, INPUT, HIDDEN, BINS = 6, 4, 5, 7, 11


def _lstm_and_input(num_layers, sparsifier=None):
    torch.manual_seed(0)
    lstm = LSTM(INPUT, HIDDEN, num_layers=num_layers, sparsifier=sparsifier).double()
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.double, requires_grad=True)
    return lstm, x


def _record(lstm, x):
    recorders = [LayerRecorder() for _ in range(lstm.num_layers)]
    lstm.dnet_recorders = recorders
    output, (h_n, c_n) = lstm(x)
    (output.square().sum() + h_n.sum() + 0.5 * c_n.sum()).backward()
    lstm.dnet_recorders = None
    return [recorder.histograms(BINS) for recorder in recorders]


def test_recorded_counts_equal_numpy_histograms_of_the_autograd_gate_gradients():
    lstm, x = _lstm_and_input(1)
    [recorded] = _record(lstm, x)
    # the independent side: dnet_t as autograd sees it on a step-by-step LSTM
    seen = []
    weights = [(lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)]
    zeros = torch.zeros(1, BATCH, HIDDEN, dtype=torch.double)
    output, h_n, c_n = slow_reference.lstm_with_hooks(
        x, zeros, zeros, weights, dnet_hook=lambda grad: seen.append(grad.detach().clone()))
    (output.square().sum() + h_n.sum() + 0.5 * c_n.sum()).backward()
    dnet = torch.stack(seen).numpy()  # (T, N, 4H), the order does not matter to a histogram
    for index, gate in enumerate(GATES):
        values = dnet[:, :, index * HIDDEN:(index + 1) * HIDDEN].ravel()
        stored = recorded["gates"][gate]
        np.testing.assert_allclose(stored["max_abs"], np.abs(values).max(), rtol=1e-12)
        np.testing.assert_allclose(stored["edges"], np.linspace(-1, 1, BINS + 1)
                                   * np.abs(values).max(), rtol=1e-12, atol=1e-15)
        edges = np.asarray(stored["edges"])
        # the largest |dnet| is an outer edge: clip away its last-bit difference between the
        # two computations so it lands in the outer bin on both sides
        expected, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
        assert stored["counts"] == expected.tolist()
        assert sum(stored["counts"]) == stored["count"] == STEPS * BATCH * HIDDEN
        below = np.mean(np.abs(values) < 1e-2 * np.abs(values).max())
        assert stored["fraction_below"]["1e-2"] == below


def test_every_layer_records_all_t_steps_of_each_gate_before_the_method_sparsifies():
    lstm, x = _lstm_and_input(2, {"name": "coarse", "R": 7, "S": 6, "P": 4})
    recorded = _record(lstm, x)
    assert [layer["rows"] for layer in recorded] == [STEPS * BATCH] * 2
    for layer in recorded:
        for gate in GATES:
            assert sum(layer["gates"][gate]["counts"]) == STEPS * BATCH * HIDDEN
            # coarse drops 6 of 7 slices: after sparsifying, most of dnet would be zero
            assert layer["gates"][gate]["fraction_zero"] < 0.5


def test_edges_span_the_largest_magnitude_symmetrically_and_all_zeros_still_bin():
    values = torch.tensor([-3.0, 0.0, 1.0, 3.0, 2.999])
    result = gate_histogram(values, 3)
    assert result["edges"] == [-3.0, -1.0, 1.0, 3.0]
    assert result["counts"] == [1, 1, 3]  # [a, b) bins, the last one closed
    zeros = gate_histogram(torch.zeros(4), 5)
    assert zeros["counts"] == [0, 0, 4, 0, 0] and zeros["fraction_zero"] == 1.0


def test_no_recorder_means_the_backward_keeps_nothing_for_histograms():
    lstm, x = _lstm_and_input(1)
    recorder = LayerRecorder()
    output, _ = lstm(x)
    output.sum().backward()
    assert lstm.dnet_recorders is None and recorder.values == []


def test_a_run_writes_the_recorded_steps_and_a_resume_keeps_them(write_recipe, tmp_path,
                                                                  monkeypatch):
    recipe = write_recipe("record: {dnet_steps: [2, 9, 30], dnet_bins: 9}\n", steps=12)
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", str(recipe), "--out", str(out), "--name", "whole"])
    assert result.exit_code == 0, result.output
    whole = json.loads((out / "whole" / "dnet_histograms.json").read_text())
    assert [entry["step"] for entry in whole["steps"]] == [2, 9]  # 30 is past the end
    assert whole["gates"] == list(GATES) and whole["bins"] == 9
    layers = whole["steps"][0]["layers"]
    assert [(layer["module"], layer["layer"]) for layer in layers] == [(0, 0), (0, 1)]
    gate = layers[1]["gates"]["g"]
    assert len(gate["counts"]) == 9 and len(gate["edges"]) == 10
    assert sum(gate["counts"]) == gate["count"] == 4 * 5 * 16  # batch x bptt x hidden

    with monkeypatch.context() as patch:
        interrupt_at(patch, 5)  # after step 2 was recorded, before step 9
        stopped = CliRunner().invoke(main, ["run", str(recipe), "--out", str(out),
                                            "--name", "cut"])
    assert stopped.exit_code == 130
    resumed = CliRunner().invoke(main, ["run", str(recipe), "--out", str(out), "--name", "cut",
                                        "--resume"])
    assert resumed.exit_code == 0, resumed.output
    cut = json.loads((out / "cut" / "dnet_histograms.json").read_text())
    assert rounded(cut) == rounded(whole)
