"""The recipe as frozen, typed dataclasses: what every run reads, built once from YAML.

Each field's `help` metadata is its documentation (and the text shown for unknown keys).
Method parameters are not fields here: `sparsetrain.sparsify` owns them (one registry), and a
method is kept as a plain mapping `{"name": ..., **params}` after `sparsify.resolve` has
checked it and filled in its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


def _field(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class DataConfig:
    dir: str | None = _field(
        None,
        "folder holding the task's files; unset: $SPARSETRAIN_DATA/<task folder>, "
        "else ./data/<task folder>",
    )
    vocab_size: int | None = _field(
        None,
        "vocabulary size for tasks that learn one (translate: sentencepiece pieces; caption: "
        "most frequent words); unset: the task's default",
    )


@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int = _field(512, "LSTM units per layer")
    num_layers: int = _field(2, "stacked LSTM layers")
    embedding_size: int | None = _field(None, "word embedding width; unset: hidden_size")
    tied: bool = _field(False, "share the embedding and softmax weights (needs equal widths)")
    encoder_layers: int = _field(
        2, "translate: encoder LSTM layers, the first bidirectional (num_layers: the decoder's)")


@dataclass(frozen=True)
class Phase:
    method: Mapping[str, Any] = _field(None, "gate-gradient method: {name: ..., params}")
    share: float = _field(1.0, "fraction of the total training steps spent in this phase")
    restart_lr: bool = _field(
        False, "restart the lr schedule at this phase: its epochs count from 0 again, so lr "
        "returns to train.lr and decays after decay_after_epoch epochs of this phase")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _field(40, "passes over the training data (ignored when steps is set)")
    steps: int | None = _field(None, "total optimizer steps; overrides epochs when set")
    batch_size: int = _field(64, "sequences per batch")
    bptt: int = _field(35, "time steps per truncated-backprop segment")
    optimizer: str = _field("sgd", "sgd | adam")
    lr: float = _field(1.0, "initial learning rate")
    lr_decay: float = _field(0.8, "multiply lr by this after each epoch past decay_after_epoch")
    decay_after_epoch: int = _field(6, "epochs at full lr before decay starts")
    clip: float | None = _field(5.0, "max global gradient norm; null: no clipping")
    init_scale: float = _field(0.05, "parameters start uniform in [-init_scale, init_scale]")
    dropout: float = _field(0.5, "dropout on embeddings, between layers and before softmax")
    label_smoothing: float = _field(0.0, "cross-entropy label smoothing (0: none)")
    log_every: int = _field(50, "steps between metric lines")


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = _field(10, "sequences per evaluation batch")
    every_epochs: int = _field(1, "validate every this many epochs (and at the end)")
    test: bool = _field(True, "evaluate on the test split at the end")


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = _field(5, "beam width of generation (1: greedy)")
    max_length: int = _field(80, "longest generated output, in tokens")
    length_penalty: float = _field(
        0.6, "beam score = log-prob / ((5 + length) / 6) ** length_penalty (0: raw log-prob)")


@dataclass(frozen=True)
class RecordConfig:
    dnet_steps: tuple[int, ...] = _field(
        (), "optimizer steps (1-based) at which each layer's dnet values are histogrammed per "
        "gate into dnet_histograms.json (for `sparsetrain plot histogram`)")
    dnet_bins: int = _field(101, "histogram bins, symmetric around 0")


# The recipe's sections: each one a dataclass of its own, filled with defaults when absent.
SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig,
            "decode": DecodeConfig, "record": RecordConfig}


@dataclass(frozen=True)
class Recipe:
    task: str = _field("lm", "task plugin: lm | caption | translate")
    seed: int = _field(1234, "random seed for data order, init and dropout")
    device: str = _field("auto", "cpu | cuda | auto (cuda when available)")
    dtype: str = _field("float32", "float32 | bfloat16 | float64 (parameters and activations)")
    backend: str = _field("torch", "LSTM backward backend: torch | cupy | auto")
    data: DataConfig = _field(None, "where the task's data lives")
    model: ModelConfig = _field(None, "network shape")
    schedule: tuple[Phase, ...] = _field(
        (), "training phases in order; a recipe gives either `method` or `schedule`"
    )
    train: TrainConfig = _field(None, "optimization settings")
    eval: EvalConfig = _field(None, "evaluation settings")
    decode: DecodeConfig = _field(None, "generation settings of tasks that generate (BLEU)")
    record: RecordConfig = _field(None, "extra recordings for plots")

    def __post_init__(self) -> None:
        # Frozen dataclasses cannot use mutable defaults; fill the sub-configs here.
        for name, kind in SECTIONS.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, kind())
