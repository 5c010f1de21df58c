"""Time spent in `loss.backward()`: CUDA events on a GPU (no sync per step), perf_counter on
the CPU. Used as a context manager around the backward call."""

from __future__ import annotations

import time
from typing import Any

import torch


class BackwardTimer:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._events: list[tuple[Any, Any]] = []
        self._ms = 0.0
        self._steps = 0
        self._started = 0.0

    def __enter__(self) -> BackwardTimer:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self._events.append((start, end))
        else:
            self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            self._events[-1][1].record()
        else:
            self._ms += (time.perf_counter() - self._started) * 1000.0
        self._steps += 1

    def collect(self) -> tuple[float, int]:
        """Total ms and the number of backward calls since the last collect; then reset."""
        if self._events:
            self._events[-1][1].synchronize()
            self._ms += sum(start.elapsed_time(end) for start, end in self._events)
            self._events.clear()
        totals = (self._ms, self._steps)
        self._ms, self._steps = 0.0, 0
        return totals
