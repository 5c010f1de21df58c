"""meProp's unified top-k: the same k columns kept for every row of the batch."""

from __future__ import annotations

import torch

from sparsetrain.sparsify.base import (
    Compact, Param, Sparsifier, decision_dtype, register_method,
)


@register_method("meprop")
class MeProp(Sparsifier):
    """Keeps the `keep` fraction of columns with the largest sum over the batch of abs(value).

    With `target: dh` the layer applies it to dh_t (N x H) before dnet is formed, as meProp
    does; with `target: dnet` it acts on dnet like the structured methods.
    """

    parameters = (
        Param("keep", float, rule=lambda v: 0 < v <= 1, rule_text="in (0, 1]"),
        Param("target", str, default="dnet", choices=("dnet", "dh")),
    )

    def kept_columns(self, values: torch.Tensor) -> torch.Tensor:
        """Ascending numbers of the kept columns; of equal scores the lower column wins."""
        columns = values.shape[1]
        count = max(1, round(self.keep * columns))
        scores = torch.linalg.vector_norm(values, ord=1, dim=0, dtype=decision_dtype(values))
        order = torch.sort(scores, descending=True, stable=True).indices[:count]
        return order.sort().values

    def keep_mask(self, values: torch.Tensor) -> torch.Tensor | None:
        if self.keep == 1.0:
            return None
        column_kept = torch.zeros(1, values.shape[1], dtype=torch.bool, device=values.device)
        return column_kept.scatter_(1, self.kept_columns(values).unsqueeze(0), True)

    def compact(self, values: torch.Tensor) -> Compact:
        columns = self.kept_columns(values)
        return Compact(values[:, columns], columns.to(torch.int32))

    def expand(self, compact: Compact, shape: tuple[int, int]) -> torch.Tensor:
        out = compact.values.new_zeros(shape)
        out[:, compact.index.long()] = compact.values
        return out
