"""Value rules of recipe settings, checked once the types are right.

A rule is `(holds(value), what it must be)`; a rule that ties two settings names both keys.
Method parameters are not here: `sparsetrain.sparsify` owns their rules.
"""

from __future__ import annotations

from typing import Any, Callable

from sparsetrain.config.schema import Recipe
from sparsetrain.config.source import KeyPath

Rule = tuple[Callable[[Any], bool], str]


def one_of(*choices: str) -> Rule:
    return (lambda value: value in choices), f"one of {', '.join(choices)}"


POSITIVE: Rule = (lambda value: value > 0), "> 0"
POSITIVE_OR_NULL: Rule = (lambda value: value is None or value > 0), "> 0 or null"

VALUE_RULES: dict[KeyPath, Rule] = {
    ("seed",): ((lambda value: value >= 0), ">= 0"),
    ("device",): one_of("cpu", "cuda", "auto"),
    ("dtype",): one_of("float32", "bfloat16", "float64"),
    ("backend",): one_of("torch", "cupy", "auto"),
    ("data", "dir"): ((lambda value: value is None or value.strip() != ""),
                      "a folder or null (empty text names no folder)"),
    ("model", "hidden_size"): POSITIVE,
    ("model", "num_layers"): POSITIVE,
    ("model", "embedding_size"): POSITIVE_OR_NULL,
    ("train", "epochs"): POSITIVE,
    ("train", "steps"): POSITIVE_OR_NULL,
    ("train", "batch_size"): POSITIVE,
    ("train", "bptt"): POSITIVE,
    ("train", "optimizer"): one_of("sgd", "adam"),
    ("train", "lr"): POSITIVE,
    ("train", "lr_decay"): POSITIVE,
    ("train", "decay_after_epoch"): ((lambda value: value >= 0), ">= 0"),
    ("train", "clip"): POSITIVE_OR_NULL,
    ("train", "init_scale"): POSITIVE,
    ("train", "dropout"): ((lambda value: 0 <= value < 1), "in [0, 1)"),
    ("train", "log_every"): POSITIVE,
    ("data", "vocab_size"): POSITIVE_OR_NULL,
    ("model", "encoder_layers"): POSITIVE,
    ("train", "label_smoothing"): ((lambda value: 0 <= value < 1), "in [0, 1)"),
    ("decode", "beam_size"): POSITIVE,
    ("decode", "max_length"): POSITIVE,
    ("decode", "length_penalty"): ((lambda value: value >= 0), ">= 0"),
    ("record", "dnet_steps"): ((lambda steps: all(step > 0 for step in steps)),
                               "a list of step numbers > 0"),
    ("record", "dnet_bins"): ((lambda value: value >= 3), ">= 3"),
    ("eval", "batch_size"): POSITIVE,
    ("eval", "every_epochs"): POSITIVE,
}


def _tied_widths(recipe: Recipe) -> str | None:
    model = recipe.model
    if model.tied and model.embedding_size not in (None, model.hidden_size):
        return (f"tied weights need embedding_size null or equal to hidden_size "
                f"({model.hidden_size}), got {model.embedding_size}")
    return None


# (the keys the rule ties, first one locates the message; the rule -> problem or None)
CROSS_RULES: list[tuple[tuple[KeyPath, ...], Callable[[Recipe], str | None]]] = [
    ((("model", "tied"), ("model", "embedding_size")), _tied_widths),
]
