"""Bench results as a rich table, a JSON file (with the environment) and a PNG bar chart."""

from __future__ import annotations

import json
import pathlib
import platform

import torch
from rich.console import Console
from rich.table import Table

from sparsetrain.files import write_text_atomically
from sparsetrain.report.plots import pyplot, save


def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    try:
        import cupy
        env["cupy"] = cupy.__version__
    except ImportError:
        env["cupy"] = None
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name()
    return env


def with_speedups(rows: list[dict]) -> list[dict]:
    """Adds speedup_vs_dense and speedup_vs_cudnn (backward) within each shape and dtype."""
    baseline: dict[tuple, dict[str, float]] = {}
    for row in rows:
        if row["method"] in ("dense", "cudnn") and "backward_ms" in row:
            baseline.setdefault((row["shape"], row["dtype"]), {})[row["method"]] = row["backward_ms"]
    for row in rows:
        base = baseline.get((row["shape"], row["dtype"]), {})
        for method in ("dense", "cudnn"):
            ms = row.get("backward_ms")
            row[f"speedup_vs_{method}"] = (base[method] / ms if method in base and ms else None)
    return rows


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3f}{unit}" if unit else f"{value:.2f}x"


def print_table(rows: list[dict], console: Console | None = None) -> None:
    table = Table(title="LSTM backward (median ms, CUDA events)")
    for column in ("shape", "dtype", "method", "sparsity", "backward ms", "fwd+bwd ms",
                   "vs our dense", "vs cuDNN"):
        table.add_column(column, justify="right" if "ms" in column or "vs" in column else "left")
    for row in rows:
        table.add_row(row["shape"], row["dtype"], row["method"], f"{row['sparsity']:.2f}",
                      _fmt(row.get("backward_ms"), " "), _fmt(row.get("train_ms"), " "),
                      _fmt(row.get("speedup_vs_dense")), _fmt(row.get("speedup_vs_cudnn")))
    (console or Console()).print(table)


def write_json(rows: list[dict], path: pathlib.Path, settings: dict) -> None:
    write_text_atomically(path, json.dumps({"environment": environment(), "settings": settings,
                                            "results": rows}, indent=2) + "\n")


def write_chart(rows: list[dict], path: pathlib.Path) -> None:
    """One group of bars (backward ms) per shape and dtype, one bar per method/sparsity."""
    plt = pyplot()
    groups = sorted({(r["shape"], r["dtype"]) for r in rows if r.get("backward_ms")})
    labels = sorted({(r["method"], r["sparsity"]) for r in rows if r.get("backward_ms")},
                    key=lambda m: (m[0] != "cudnn", m[0] != "dense", m))
    width = 0.8 / max(len(labels), 1)
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 4))
    for k, (method, sparsity) in enumerate(labels):
        heights = []
        for group in groups:
            match = [r["backward_ms"] for r in rows if (r["shape"], r["dtype"]) == group
                     and (r["method"], r["sparsity"]) == (method, sparsity)
                     and r.get("backward_ms")]
            heights.append(match[0] if match else 0.0)
        name = method if method in ("dense", "cudnn") else f"{method} {sparsity:.2f}"
        axes.bar([g + k * width for g in range(len(groups))], heights, width, label=name)
    axes.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))],
                    [f"{s}\n{d}" for s, d in groups])
    axes.set_ylabel("backward ms (median)")
    axes.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    save(figure, path)
