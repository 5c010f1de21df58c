"""dnet histograms: at the recipe's `record.dnet_steps`, each LSTM layer's gate gradient.

On a recording step every sparsetrain LSTM layer hands the dnet_t it forms in its backward
(before the method sparsifies it; all T steps, all calls of that step) to a `LayerRecorder`;
after the step the values become one histogram per gate (i, f, g, o: the four H-wide column
blocks) in `dnet_histograms.json`:

    {"gates": ["i", "f", "g", "o"], "bins": B, "binning": "...",
     "steps": [{"step": 5, "method": {...}, "layers": [
         {"module": 0, "layer": 0, "calls": 1, "rows": T*N, "hidden": H,
          "gates": {"i": {"edges": [B + 1 floats], "counts": [B ints], "count": T*N*H,
                          "max_abs", "mean_abs", "rms", "fraction_zero",
                          "fraction_below": {"1e-3": ..., "1e-2": ..., "1e-1": ...}}, ...}},
         ...]}, ...]}

Bins: B equal-width bins over [-m, m], m = max |dnet| of that gate, layer and step (numpy's
convention: [a, b) with the last bin closed). `fraction_below[r]` is the share of values with
|dnet| < r * m: the skew that thresholding methods rely on. Other steps cost nothing: no
recorder is attached, and the layer's backward checks one `is None` per time step. On the
CuPy backend a recording step runs the torch reference for its layers (one slow step).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from sparsetrain.train.rundir import DNET_HISTOGRAMS, RunDir

GATES = ("i", "f", "g", "o")
RATIOS = ("1e-3", "1e-2", "1e-1")
BINNING = ("per gate, layer and step: equal-width bins over [-max|dnet|, max|dnet|], "
           "[a, b) with the last bin closed; dnet before the method sparsifies it (a method "
           "acting on dh sparsifies dh first, so its dnet is formed from the kept dh), "
           "all T steps")


class LayerRecorder:
    """Collects one layer's dnet (T, N, 4H) of every backward call in a recording step."""

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []

    def add(self, dnet: torch.Tensor) -> None:
        self.values.append(dnet.detach().reshape(-1, dnet.shape[-1]))

    def histograms(self, bins: int) -> dict[str, Any]:
        rows = torch.cat(self.values).double()
        hidden = rows.shape[1] // 4
        return {"calls": len(self.values), "rows": rows.shape[0], "hidden": hidden,
                "gates": {gate: gate_histogram(block, bins)
                          for gate, block in zip(GATES, rows.split(hidden, dim=1))}}


def gate_histogram(values: torch.Tensor, bins: int) -> dict[str, Any]:
    values = values.reshape(-1).double()
    magnitude = values.abs()
    top = magnitude.max().item() if values.numel() else 0.0
    span = top if top > 0 else 1.0
    edges = torch.linspace(-span, span, bins + 1, dtype=torch.float64, device=values.device)
    index = (torch.bucketize(values, edges, right=True) - 1).clamp_(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    count = values.numel()
    return {"edges": edges.tolist(), "counts": counts.tolist(), "count": count,
            "max_abs": top, "mean_abs": magnitude.mean().item(),
            "rms": magnitude.square().mean().sqrt().item(),
            "fraction_zero": (magnitude == 0).sum().item() / count,
            "fraction_below": {ratio: (magnitude < float(ratio) * top).sum().item() / count
                               for ratio in RATIOS}}


class DnetRecording:
    """The trainer's side: attach recorders before a recording step, write after it."""

    def __init__(self, steps: Sequence[int], bins: int, lstms: Sequence[Any],
                 run: RunDir) -> None:
        self.steps = frozenset(steps)
        self.bins = bins
        self.lstms = list(lstms)
        self.run = run
        self._active: list[list[LayerRecorder]] | None = None

    def before_step(self, step: int) -> None:
        """`step` is 1-based: the optimizer step about to run."""
        if step not in self.steps or not self.lstms:
            return
        self._active = [[LayerRecorder() for _ in range(lstm.num_layers)]
                        for lstm in self.lstms]
        for lstm, recorders in zip(self.lstms, self._active):
            lstm.dnet_recorders = recorders

    def after_step(self, step: int) -> None:
        if self._active is None:
            return
        active, self._active = self._active, None
        for lstm in self.lstms:
            lstm.dnet_recorders = None
        layers = [{"module": module, "layer": layer, **recorder.histograms(self.bins)}
                  for module, recorders in enumerate(active)
                  for layer, recorder in enumerate(recorders) if recorder.values]
        if layers:  # a step whose loss was not finite ran no backward
            self._write({"step": step, "method": dict(self.lstms[0].sparsifier.spec),
                         "layers": layers})

    def _write(self, entry: dict[str, Any]) -> None:
        # A resumed run re-runs the steps after its checkpoint: their entries are replaced.
        old = self.run.read_json(DNET_HISTOGRAMS) or {}
        steps = [kept for kept in old.get("steps", []) if kept.get("step") != entry["step"]]
        steps = sorted([*steps, entry], key=lambda item: item["step"])
        self.run.write_json(DNET_HISTOGRAMS, {"gates": list(GATES), "bins": self.bins,
                                   "binning": BINNING, "steps": steps})
