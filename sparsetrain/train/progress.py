"""What the user watches: one rich Live display on a terminal, plain lines otherwise.

The live display shows an epoch/step bar with loss, the task metric, tokens/s and sparsity.
When stdout is not a terminal (CI logs, pipes) it stays off and each evaluation prints one
plain line instead, so logs remain readable.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class ProgressDisplay:
    def __init__(self, total_steps: int, steps_per_epoch: int, metric: str,
                 live: bool | None = None, console: Console | None = None) -> None:
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.metric = metric
        self.live = sys.stdout.isatty() if live is None else live
        self.console = console
        self._progress: Progress | None = None
        self._bar: Any = None
        self._stats = ""

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                console=self.console or Console(), transient=False)
            self._progress.start()
            self._bar = self._progress.add_task("epoch 1", total=self.total_steps, stats="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _epochs(self) -> int:
        return -(-self.total_steps // self.steps_per_epoch)

    def step(self, step: int) -> None:
        if self._progress is not None:
            epoch = min(step // self.steps_per_epoch + 1, self._epochs())
            self._progress.update(self._bar, completed=step,
                                  description=f"epoch {epoch}/{self._epochs()}")

    def train_line(self, record: dict[str, Any]) -> None:
        parts = [f"loss {record['loss']:.3f}"]
        if self.metric == "perplexity" and record["loss"] < 50:
            parts.append(f"ppl {math.exp(record['loss']):.1f}")
        parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
        parts.append(f"{record['method']} sparsity {record['sparsity']:.2f}")
        self._stats = "  ".join(parts)
        if self._progress is not None:
            self._progress.update(self._bar, stats=self._stats)

    def eval_line(self, record: dict[str, Any]) -> None:
        text = (f"epoch {record['epoch']} step {record['step']}/{self.total_steps} "
                f"{record['split']} {self.metric} {record[self.metric]:.2f}")
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        else:
            click.echo(f"{text}  ({self._stats})" if self._stats else text)

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)
        else:
            click.echo(text)
