"""What a task is to the trainer: data, a model, one training step, and an evaluation.

The trainer owns the loop (steps, schedule, optimizer, clipping, logging, checkpoints); a task
owns everything that depends on the data: how a batch is made, what the loss is, and how a
split is scored. Every task scores with one metric, named by the task, and says whether lower
is better (perplexity) or higher (BLEU).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sparsetrain.config.schema import Recipe


@dataclass(frozen=True)
class Metric:
    """How a task scores a split: `name` goes into metrics.jsonl and summary.json."""

    name: str
    lower_is_better: bool
    signature: str = ""  # how the score was computed, where a tool says (sacrebleu's)


@dataclass(frozen=True)
class Step:
    """One training step's result.

    `objective` is what the trainer back-propagates (graph attached); `loss` is the per-item
    loss that is logged (for `lm`: mean NLL per token); `items` counts what was processed
    (tokens), for throughput.
    """

    objective: torch.Tensor
    loss: torch.Tensor
    items: int


class Task(ABC):
    """One kind of experiment. Construct with the recipe, then `build_data()`, `build_model()`."""

    name: ClassVar[str]
    metric: ClassVar[Metric]
    carry_policy: ClassVar[str] = "nothing is carried from one step to the next"

    def __init__(self, recipe: Recipe, device: torch.device, dtype: torch.dtype) -> None:
        self.recipe = recipe
        self.device = device
        self.dtype = dtype

    @abstractmethod
    def build_data(self) -> None:
        """Read and check the data files; a missing or corrupt file raises ConfigError."""

    @property
    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Training steps in one pass over the training split (after build_data)."""

    @abstractmethod
    def build_model(self) -> torch.nn.Module:
        """The initialized model on `device` in `dtype`, built from `sparsetrain.nn` layers."""

    @abstractmethod
    def start_epoch(self, epoch: int) -> None:
        """Called before the first step of each epoch (e.g. to reset carried state)."""

    @abstractmethod
    def train_step(self, model: torch.nn.Module, index: int) -> Step:
        """Forward the `index`-th batch of the current epoch in training mode."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, split: str) -> float:
        """The metric on a whole split ("valid" or "test"), in eval mode, without gradients."""

    def carried_state(self) -> Any:
        """State carried from one step to the next (saved in checkpoints); none by default."""
        return None

    def restore_carried_state(self, state: Any) -> None:
        """Put back what `carried_state` returned, after a resume."""
