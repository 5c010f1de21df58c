"""Methods that decide per element: keep everything, a static threshold, a per-step threshold."""

from __future__ import annotations

import torch

from sparsetrain.sparsify.base import Param, Sparsifier, decision_values, register_method


@register_method("dense")
class Dense(Sparsifier):
    """Keeps every entry: the ordinary backward pass."""

    def keep_mask(self, dnet: torch.Tensor) -> None:
        return None


@register_method("threshold")
class Threshold(Sparsifier):
    """Keeps entries with abs(dnet) >= tau (the static "sparsified SGD" threshold)."""

    parameters = (Param("tau", float, rule=lambda v: v >= 0, rule_text=">= 0"),)

    def keep_mask(self, dnet: torch.Tensor) -> torch.Tensor:
        return decision_values(dnet).abs() >= self.tau


@register_method("adaptive")
class Adaptive(Sparsifier):
    """Chooses a threshold per call so that a `target` fraction of the entries is zeroed."""

    parameters = (Param("target", float, rule=lambda v: 0 <= v < 1, rule_text="in [0, 1)"),)

    def keep_mask(self, dnet: torch.Tensor) -> torch.Tensor | None:
        magnitude = decision_values(dnet).abs()
        dropped = round(self.target * magnitude.numel())
        if dropped == 0:
            return None
        threshold = magnitude.flatten().kthvalue(dropped).values
        return magnitude > threshold
