"""Run a sweep's runs as separate `sparsetrain run` processes, `jobs` at a time.

Each run is its own process (a crash or a diverged run cannot take the others down) with its
log in `<root>/logs/<name>.log`. Each run goes to the given GPU running the fewest runs (the
first such in the list) through CUDA_VISIBLE_DEVICES; several runs share one GPU well, since
a small LSTM leaves it mostly idle.
What a run needs is decided from its directory alone, so a second invocation of the same sweep
skips completed runs, resumes interrupted or killed ones and leaves failed ones for the user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sparsetrain.sweep.spec import SweepRun, SweepSpec
from sparsetrain.train.rundir import METRICS, SUMMARY, RunDir
from sparsetrain.train.summary import final_text

POLL_S = 0.5
# A run that handled the signal exits 128 + it; one stopped before its handler was set
# (while loading data) is killed by it, which Popen reports as minus the signal.
STOPPED_CODES = {128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM}


@dataclass
class RunState:
    """One run's place in the sweep; `action` is start | resume | skip | blocked."""

    run: SweepRun
    action: str
    state: str = "waiting"  # waiting | running | completed | failed | interrupted | skipped
    note: str = ""
    step: int = 0
    total_steps: int | None = None
    device: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)


def plan_action(directory: Path) -> tuple[str, str]:
    """(action, why) for a run directory, from what it holds."""
    run = RunDir(directory)
    if not run.exists():
        return "start", ""
    status = run.status()
    if status == "completed":
        return "skip", "completed earlier"
    if status == "failed":
        return "blocked", "failed earlier; delete its folder to run it again"
    if run.resumable(status):
        return "resume", f"{status} earlier"
    return "blocked", "folder has no checkpoint to resume; delete it to run again"


# The state a run starts the sweep in, by its planned action.
FIRST_STATE = {"start": "waiting", "resume": "waiting", "skip": "skipped", "blocked": "failed"}


class SweepRunner:
    def __init__(self, spec: SweepSpec, root: Path, jobs: int, devices: list[str] | None) -> None:
        self.spec, self.root, self.jobs, self.devices = spec, root, jobs, devices
        self.on_change: Callable[[RunState], None] = lambda state: None  # a run changed state
        self.on_tick: Callable[[], None] = lambda: None  # every poll: progress may have moved
        self.states = []
        for run in spec.runs:
            action, why = plan_action(root / run.name)
            self.states.append(RunState(run, action, FIRST_STATE[action], note=why))
        self.stop_signal: str | None = None

    def log_path(self, run: SweepRun) -> Path:
        return self.root / "logs" / f"{run.name}.log"

    def pending(self) -> list[RunState]:
        return [s for s in self.states if s.state == "waiting"]

    def running(self) -> list[RunState]:
        return [s for s in self.states if s.state == "running"]

    def run(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        while True:
            for state in self.running():
                self._poll(state)
            if self.stop_signal is None:
                while self.pending() and len(self.running()) < self.jobs:
                    self._launch(self.pending()[0])
            self.on_tick()
            if not self.running() and (self.stop_signal or not self.pending()):
                return
            time.sleep(POLL_S)

    def request_stop(self, name: str) -> None:
        """Ask every running run to checkpoint and stop (they resume on the next sweep)."""
        self.stop_signal = name
        for state in self.running():
            if state.process and state.process.poll() is None:
                state.process.send_signal(signal.SIGTERM)

    def _launch(self, state: RunState) -> None:
        spec, run = self.spec, state.run
        command = [sys.executable, "-m", "sparsetrain", "run", str(spec.base),
                   "--out", str(self.root), "--name", run.name]
        for override in run.overrides:
            command += ["--set", override]
        if state.action == "resume":
            command.append("--resume")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.devices:
            busy = [other.device for other in self.running()]
            state.device = min(self.devices, key=busy.count)
            env["CUDA_VISIBLE_DEVICES"] = state.device
        log = open(self.log_path(run), "a", encoding="utf-8")
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        # Its own process group: a Ctrl-C reaches the sweep only, which then asks each run to
        # stop cleanly (SIGTERM -> checkpoint) instead of every run seeing it at once.
        state.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        log.close()
        state.state, state.note = "running", state.action
        self.on_change(state)

    def _poll(self, state: RunState) -> None:
        directory = self.root / state.run.name
        state.step = _last_step(directory)
        code = state.process.poll() if state.process else None
        if state.total_steps is not None and code is None:
            return
        summary = RunDir(directory).read_json(SUMMARY) or {}
        if state.total_steps is None:  # written once, when the run starts
            state.total_steps = summary.get("total_steps")
        if code is None:
            return
        status = summary.get("status")
        if code == 0 and status == "completed":
            state.state, state.note = "completed", final_text(summary)
        elif code in STOPPED_CODES and status in ("interrupted", None):
            # None: stopped while still loading, before its folder was made
            state.state = "interrupted"
            state.note = "resumes on the next sweep" if status else "starts on the next sweep"
        else:
            state.state = "failed"
            state.note = _last_line(self.log_path(state.run)) or f"exit code {code}"
        self.on_change(state)


def _last_step(directory: Path) -> int:
    """The step of metrics.jsonl's last whole line, read from the file's tail only."""
    metrics = directory / METRICS
    if not metrics.is_file():
        return 0
    with open(metrics, "rb") as handle:
        handle.seek(max(0, metrics.stat().st_size - 4096))
        for line in handle.read().splitlines()[::-1]:
            try:
                return int(json.loads(line).get("step", 0))
            except (ValueError, AttributeError):
                continue
    return 0


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1][:200] if lines else ""


