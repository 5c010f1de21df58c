"""The structured methods: whole P-wide column slices (coarse) or My x Mx blocks (fine).

Layouts, for dnet of N rows and W = 4H columns:

    coarse:  W = G regions x R slices x P columns; per region keep the R-S slices of largest
             L2 norm.        view (N, G, R, P), norms (G, R)
    fine:    N = B row blocks x My rows, W = C slices x Mx columns; per slice keep the B-K
             blocks of largest L2 norm.   view (B, My, C, Mx), norms (B, C)
"""

from __future__ import annotations

import torch

from sparsetrain.sparsify.base import (
    Compact, Param, Sparsifier, decision_dtype, register_method, shape_error,
)


def _positive(value: int) -> bool:
    return value > 0


def _largest(norms: torch.Tensor, count: int, dim: int, ascending: bool = True) -> torch.Tensor:
    """Positions of the `count` largest norms along `dim`; ties keep the lower position."""
    order = torch.sort(norms, dim=dim, descending=True, stable=True).indices
    largest = order.narrow(dim, 0, count)
    return largest.sort(dim=dim).values if ascending else largest


@register_method("coarse")
class Coarse(Sparsifier):
    parameters = (
        Param("P", int, default=4, rule=_positive, rule_text="> 0"),
        Param("R", int, rule=_positive, rule_text="> 0"),
        Param("S", int, rule=lambda v: v >= 0, rule_text=">= 0"),
    )

    @classmethod
    def cross_check(cls, params):
        if params["S"] >= params["R"]:
            return [f"S: must be < R ({params['R']}), got {params['S']}"]
        return []

    def _regions(self, dnet: torch.Tensor) -> int:
        width = dnet.shape[1]
        if width % (self.P * self.R):
            raise shape_error("R", self.R, f"4H ({width}) must be divisible by P*R "
                                           f"({self.P}*{self.R}={self.P * self.R})")
        return width // (self.P * self.R)

    def kept_slices(self, dnet: torch.Tensor, ascending: bool = True) -> torch.Tensor:
        """(G, R-S) positions within each region of the kept slices."""
        regions = self._regions(dnet)
        slices = dnet.reshape(dnet.shape[0], regions, self.R, self.P)
        norms = torch.linalg.vector_norm(slices, dim=(0, 3), dtype=decision_dtype(dnet))
        return _largest(norms, self.R - self.S, dim=1, ascending=ascending)

    def keep_mask(self, dnet: torch.Tensor) -> torch.Tensor | None:
        if self.S == 0:
            self._regions(dnet)
            return None
        kept = self.kept_slices(dnet, ascending=False)
        slice_kept = torch.zeros(kept.shape[0], self.R, 1, dtype=torch.bool, device=dnet.device)
        slice_kept.scatter_(1, kept.unsqueeze(-1), True)
        return slice_kept.expand(-1, -1, self.P).reshape(1, -1)

    def _columns(self, global_slices: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(self.P, device=global_slices.device)
        return (global_slices.long().reshape(-1, 1) * self.P + offsets).reshape(-1)

    def compact(self, dnet: torch.Tensor) -> Compact:
        kept = self.kept_slices(dnet)
        first_slice = torch.arange(kept.shape[0], device=dnet.device).reshape(-1, 1) * self.R
        global_slices = (kept + first_slice).to(torch.int32)
        return Compact(dnet[:, self._columns(global_slices)], global_slices)

    def expand(self, compact: Compact, shape: tuple[int, int]) -> torch.Tensor:
        out = compact.values.new_zeros(shape)
        out[:, self._columns(compact.index)] = compact.values
        return out


@register_method("fine")
class Fine(Sparsifier):
    parameters = (
        Param("My", int, default=8, rule=_positive, rule_text="> 0"),
        Param("Mx", int, default=4, rule=_positive, rule_text="> 0"),
        Param("K", int, rule=lambda v: v >= 0, rule_text=">= 0"),
    )

    def _blocks(self, dnet: torch.Tensor) -> tuple[int, int]:
        rows, width = dnet.shape
        if rows % self.My:
            raise shape_error("My", self.My, f"batch N ({rows}) must be divisible by My")
        if width % self.Mx:
            raise shape_error("Mx", self.Mx, f"4H ({width}) must be divisible by Mx")
        row_blocks = rows // self.My
        if self.K >= row_blocks:
            raise shape_error("K", self.K, f"K must be < N/My ({rows}/{self.My}={row_blocks})")
        return row_blocks, width // self.Mx

    def _view(self, dnet: torch.Tensor) -> torch.Tensor:
        row_blocks, slices = self._blocks(dnet)
        return dnet.reshape(row_blocks, self.My, slices, self.Mx)

    def kept_blocks(self, dnet: torch.Tensor, ascending: bool = True) -> torch.Tensor:
        """(C, B-K) row-block numbers kept in each slice."""
        norms = torch.linalg.vector_norm(self._view(dnet), dim=(1, 3),
                                         dtype=decision_dtype(dnet))  # (B, C)
        return _largest(norms.t(), norms.shape[0] - self.K, dim=1, ascending=ascending)

    def keep_mask(self, dnet: torch.Tensor) -> torch.Tensor | None:
        if self.K == 0:
            self._blocks(dnet)
            return None
        kept = self.kept_blocks(dnet, ascending=False)
        slices, row_blocks = kept.shape[0], dnet.shape[0] // self.My
        block_kept = torch.zeros(slices, row_blocks, dtype=torch.bool, device=dnet.device)
        block_kept.scatter_(1, kept, True)
        mask = block_kept.t().reshape(row_blocks, 1, slices, 1)
        return mask.expand(row_blocks, self.My, slices, self.Mx).reshape(dnet.shape)

    def compact(self, dnet: torch.Tensor) -> Compact:
        kept = self.kept_blocks(dnet)
        by_slice = self._view(dnet).permute(2, 0, 1, 3)  # (C, B, My, Mx)
        index = kept.reshape(*kept.shape, 1, 1).expand(-1, -1, self.My, self.Mx)
        return Compact(by_slice.gather(1, index), kept.to(torch.int32))

    def expand(self, compact: Compact, shape: tuple[int, int]) -> torch.Tensor:
        rows, width = shape
        slices, row_blocks = width // self.Mx, rows // self.My
        by_slice = compact.values.new_zeros(slices, row_blocks, self.My, self.Mx)
        index = compact.index.long().reshape(*compact.index.shape, 1, 1)
        by_slice.scatter_(1, index.expand(-1, -1, self.My, self.Mx), compact.values)
        return by_slice.permute(1, 2, 0, 3).reshape(rows, width)
