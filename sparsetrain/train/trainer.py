"""The step loop: schedule phases, lr decay, clipping, logging, evaluation, checkpoints.

Everything that depends on the data is the task's (sparsetrain.tasks); everything written to
disk goes through RunDir. A checkpoint holds all the loop's counters, so a resumed run writes
the same metric lines an uninterrupted one would (timings aside).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

import sparsetrain.nn
from sparsetrain.train.dnet_histograms import DnetRecording
from sparsetrain.train.interrupt import StopRequest
from sparsetrain.train.progress import ProgressDisplay
from sparsetrain.train.rundir import MetricsLog, RunDir
from sparsetrain.train.schedule import PhasePlan, learning_rate
from sparsetrain.train.seed import restore_rng_states, rng_states
from sparsetrain.train.setup import Setup
from sparsetrain.train.summary import layer_means, merge_stats, summary
from sparsetrain.train.timing import BackwardTimer


@dataclass(frozen=True)
class Outcome:
    status: str  # completed | failed | interrupted
    step: int
    message: str


def _fresh_counters(phases: int) -> dict[str, Any]:
    return {"step": 0, "phase_wall_s": [0.0] * phases, "wall_s_before": 0.0,
            "backward_ms": 0.0, "backward_steps": 0, "train_wall_s": 0.0, "evals": {},
            "window": {"loss": 0.0, "steps": 0, "items": 0, "seconds": 0.0}}


class Trainer:
    def __init__(self, setup: Setup, run: RunDir, display: ProgressDisplay,
                 stop: StopRequest) -> None:
        self.setup = setup
        self.run = run
        self.display = display
        self.stop = stop
        self.lstms = [m for m in setup.model.modules() if isinstance(m, sparsetrain.nn.LSTM)]
        self.timer = BackwardTimer(setup.device)
        self.dnet_recording = DnetRecording(setup.recipe.record.dnet_steps,
                                            setup.recipe.record.dnet_bins, self.lstms, run)
        self.counters = _fresh_counters(len(setup.plan.phases))
        self.metrics: MetricsLog | None = None
        self._session_started = time.perf_counter()

    def wall_s(self) -> float:
        """Seconds this run has taken so far, evaluations included, over all its sessions."""
        return self.counters["wall_s_before"] + time.perf_counter() - self._session_started

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> Outcome:
        self.metrics = self.run.open_metrics(0)
        self._checkpoint()
        self._write_summary("running")
        return self._loop()

    def resume(self) -> Outcome:
        state = self.run.load_checkpoint()
        self.setup.model.load_state_dict(state["model"])
        self.setup.optimizer.load_state_dict(state["optimizer"])
        restore_rng_states(state["rng"])
        self.counters = state["counters"]
        epoch, index = divmod(self.counters["step"], self.setup.plan.steps_per_epoch)
        if index:  # resumed mid-epoch: the loop starts an epoch only at its first step
            self.setup.task.start_epoch(epoch)
        self.setup.task.restore_carried_state(state["carried_state"])
        self._session_started = time.perf_counter()
        self.metrics = self.run.open_metrics(state["metric_lines"])
        self._write_summary("running")
        return self._loop()

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> Outcome:
        setup, plan, counters = self.setup, self.setup.plan, self.counters
        phase: PhasePlan | None = None
        try:
            while counters["step"] < plan.total_steps:
                step = counters["step"]
                epoch, index = divmod(step, plan.steps_per_epoch)
                if phase is None or not phase.start <= step < phase.end:
                    phase = plan.phase_at(step)
                    for lstm in self.lstms:
                        lstm.sparsifier = phase.method
                if index == 0:
                    setup.task.start_epoch(epoch)
                lr = learning_rate(setup.recipe.train, plan.lr_epoch(step))
                self.dnet_recording.before_step(step + 1)
                loss = self._step(lr, index, phase)
                self.dnet_recording.after_step(step + 1)
                if not math.isfinite(loss):
                    return self._fail(step, epoch, loss)
                step = counters["step"] = step + 1
                if step % setup.recipe.train.log_every == 0 or step in (
                        phase.end, plan.total_steps) or step % plan.steps_per_epoch == 0:
                    self._log_train(step, epoch, phase, lr)
                if self._evaluation_due(step):
                    self._evaluate("valid", step, epoch)
                    self._checkpoint()
                    self._write_summary("running")
                self.display.step(step)
                if self.stop.requested:
                    return self._interrupt(step)
            if setup.recipe.eval.test:
                last_epoch = (counters["step"] - 1) // plan.steps_per_epoch
                self._evaluate("test", counters["step"], last_epoch)
            self._checkpoint()
            self._write_summary("completed")
            return Outcome("completed", counters["step"], "")
        except Exception as error:
            # A crash (out of memory, a bug) must not leave the run looking alive.
            self._write_summary("failed", f"crashed at step {counters['step']}: {error!r}")
            raise
        finally:
            self.metrics.close()

    def _step(self, lr: float, index: int, phase: PhasePlan) -> float:
        setup, window = self.setup, self.counters["window"]
        started = time.perf_counter()
        for group in setup.optimizer.param_groups:
            group["lr"] = lr
        result = setup.task.train_step(setup.model, index)
        loss = result.loss.item()
        if not math.isfinite(loss):
            return loss
        setup.optimizer.zero_grad(set_to_none=True)
        with self.timer:
            result.objective.backward()
        if setup.recipe.train.clip is not None:
            torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.recipe.train.clip)
        setup.optimizer.step()
        seconds = time.perf_counter() - started
        self.counters["phase_wall_s"][phase.index] += seconds
        self.counters["train_wall_s"] += seconds
        window["loss"] += loss
        window["steps"] += 1
        window["items"] += result.items
        window["seconds"] += seconds
        return loss

    def _evaluation_due(self, step: int) -> bool:
        plan, every = self.setup.plan, self.setup.recipe.eval.every_epochs
        if step == plan.total_steps:
            return True
        return step % plan.steps_per_epoch == 0 and (step // plan.steps_per_epoch) % every == 0

    # -- what gets written ------------------------------------------------------------------

    def _log_train(self, step: int, epoch: int, phase: PhasePlan, lr: float) -> None:
        window = self.counters["window"]
        if window["steps"] == 0:
            return
        backward_ms, backward_steps = self.timer.collect()
        self.counters["backward_ms"] += backward_ms
        self.counters["backward_steps"] += backward_steps
        self._drain_layer_stats()
        layers = window.get("layers", [])
        record = {"event": "train", "step": step, "epoch": epoch + 1, "phase": phase.index,
                  "method": phase.method["name"], "loss": window["loss"] / window["steps"],
                  "lr": lr, **layer_means(layers), "layers": layers,
                  "tokens_per_s": window["items"] / max(window["seconds"], 1e-9),
                  "backward_ms": backward_ms / max(backward_steps, 1)}
        self.metrics.write(record)
        self.display.train_line(record)
        self.counters["window"] = {"loss": 0.0, "steps": 0, "items": 0, "seconds": 0.0}

    def _drain_layer_stats(self) -> None:
        """Fold the layers' running statistics into the log window, so that a checkpoint
        taken mid-window (an interrupt) keeps them and the resumed line equals the original."""
        window = self.counters["window"]
        done, total = window.get("layer_steps", 0), window["steps"]
        if total == done:
            return
        fresh = [stats for lstm in self.lstms for stats in lstm.gradient_stats()]
        window["layers"] = [merge_stats(old, new, done, total - done) for old, new in
                            zip(window.get("layers") or [{}] * len(fresh), fresh)]
        window["layer_steps"] = total

    def _evaluate(self, split: str, step: int, epoch: int) -> None:
        name = self.setup.task.metric.name
        value = self.setup.task.evaluate(self.setup.model, split)
        record = {"event": "eval", "step": step, "epoch": epoch + 1, "split": split,
                  name: value, "wall_s": self.wall_s()}
        self.counters["evals"][split] = record
        self.metrics.write(record)
        self.display.eval_line(record)

    def _checkpoint(self) -> None:
        setup = self.setup
        self._drain_layer_stats()
        self.run.save_checkpoint({
            "model": setup.model.state_dict(),
            "optimizer": setup.optimizer.state_dict(),
            "rng": rng_states(),
            "step": self.counters["step"],
            "epoch_position": divmod(self.counters["step"], setup.plan.steps_per_epoch),
            "carried_state": setup.task.carried_state(),
            "carried_state_policy": setup.task.carry_policy,
            "counters": {**self.counters, "wall_s_before": self.wall_s()},
            "metric_lines": self.metrics.lines,
        })

    def _write_summary(self, status: str, message: str = "") -> None:
        self.run.write_json("summary.json", summary(self.setup, self.counters, status, message,
                                                    self.wall_s()))

    def _fail(self, step: int, epoch: int, loss: float) -> Outcome:
        message = (f"loss became {loss} at step {step + 1} (epoch {epoch + 1}); the run "
                   "diverged: lower train.lr or set train.clip")
        self.metrics.write({"event": "failed", "step": step + 1, "epoch": epoch + 1,
                            "message": message})
        self._write_summary("failed", message)
        return Outcome("failed", step, message)

    def _interrupt(self, step: int) -> Outcome:
        self._checkpoint()
        message = f"stopped by {self.stop.signal} at step {step} of {self.setup.plan.total_steps}"
        self._write_summary("interrupted", message)
        return Outcome("interrupted", step, message)
