"""SIGINT / SIGTERM ask the trainer to stop after the current step (it then saves a
checkpoint and marks the run interrupted); a second signal stops at once."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager that installs the handlers; `.signal` names the one received."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt  # second signal: the user means it
        self.signal = signal.Signals(number).name

    def __enter__(self) -> StopRequest:
        # Handlers can only be installed from the main thread; elsewhere, run unprotected.
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
