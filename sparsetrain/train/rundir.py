"""The run directory: the one writer of runs/<name>/ (see DESIGN.md, "Run directory").

    recipe.yaml     the resolved recipe            env.json      commit, versions, GPU, seed
    metrics.jsonl   one JSON object per line       summary.json  status, final metrics, times
    checkpoint.pt   what --resume needs

Every file but metrics.jsonl is replaced atomically (written to a temporary file, then
os.replace), so a killed run never leaves half a file. metrics.jsonl is appended and flushed
line by line; a resume cuts it back to the lines its checkpoint had counted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sparsetrain.files import write_atomically, write_text_atomically

RECIPE = "recipe.yaml"
ENV = "env.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
DNET_HISTOGRAMS = "dnet_histograms.json"  # only with record.dnet_steps

STATUSES = ("running", "completed", "failed", "interrupted")


def _finite(value: Any) -> Any:
    """NaN and infinities become null: metrics.jsonl stays strict JSON for every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class MetricsLog:
    """Appends one JSON object per line, flushed at once so a killed run keeps its lines."""

    def __init__(self, path: Path, lines: int) -> None:
        self.path = path
        self.lines = lines
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(_finite(record), allow_nan=False) + "\n")
        self._handle.flush()
        self.lines += 1

    def close(self) -> None:
        self._handle.close()


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=False)

    def write_text(self, name: str, text: str) -> None:
        write_text_atomically(self.file(name), text)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        self.write_text(name, json.dumps(data, indent=2, sort_keys=False) + "\n")

    def read_json(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.file(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> str | None:
        """running / completed / failed / interrupted, or None when there is no summary."""
        summary = self.read_json(SUMMARY)
        return None if summary is None else summary.get("status")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch  # here: readers of run folders (table, plot) need no torch

        write_atomically(self.file(CHECKPOINT), lambda handle: torch.save(state, handle))

    def resumable(self, status: str | None) -> bool:
        """A started run `--resume` can continue: it has a summary (its `status()`, already
        read by the caller) and a checkpoint."""
        return status is not None and self.has_checkpoint()

    def has_checkpoint(self) -> bool:
        return self.file(CHECKPOINT).is_file()

    def load_checkpoint(self) -> dict[str, Any]:
        # Our own file, holding RNG states and numpy arrays: not loadable with weights_only.
        import torch

        return torch.load(self.file(CHECKPOINT), map_location="cpu", weights_only=False)

    def open_metrics(self, keep_lines: int = 0) -> MetricsLog:
        """Open metrics.jsonl for appending after its first `keep_lines` lines (the rest,
        written after the checkpoint a resume starts from, is dropped)."""
        path = self.file(METRICS)
        kept: list[str] = []
        if keep_lines and path.exists():
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if len(kept) == keep_lines or not line.endswith("\n"):
                        break
                    kept.append(line)
        write_text_atomically(path, "".join(kept))
        return MetricsLog(path, len(kept))
