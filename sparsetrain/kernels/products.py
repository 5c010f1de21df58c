"""Launchers for the indexed tensor-core products in products.cu."""

from __future__ import annotations

import torch

from sparsetrain.kernels._checks import expect, expect_kernel_dtype, expect_rule
from sparsetrain.kernels._loader import DTYPE_NAMES, launch

TILE_COLUMNS = 128   # gather_mm: output columns per block
TILE_ROWS = 64       # gather_mm: output rows per block (8 warps, 2 x 4)
WGRAD_COLUMNS = 32   # region_wgrad: output columns per block (4 warps, one m16 each)
WGRAD_COMPACT_ROWS = 64
ACCUMULATOR_LIMIT = 32 * 1024  # region_wgrad's shared accumulator (static tiles use the rest)
GATHER_OUTPUTS = {(torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                  (torch.bfloat16, torch.bfloat16)}


def gather_mm(a: torch.Tensor, b: torch.Tensor, index: torch.Tensor, P: int,
              rows_per_group: int, out: torch.Tensor, split_k: int = 1) -> None:
    """out = a . b[kept rows]: a (M, Kc) compact values; row block i of rows_per_group rows
    reads b row index[i][k // P] * P + k % P for its compact column k.

    split_k > 1 splits Kc over blocks that add into out (float32 only): out must hold zeros
    (or what the product should be added to).
    """
    expect_kernel_dtype(a.dtype, "a")
    m, kc = a.shape
    expect_rule((a.dtype, out.dtype) in GATHER_OUTPUTS,
                f"gather_mm: no {a.dtype} -> {out.dtype} entry")
    expect_rule(P % 4 == 0 and kc % P == 0 and rows_per_group % TILE_ROWS == 0
                and m % rows_per_group == 0 and b.dim() == 2 and b.shape[1] % 4 == 0,
                f"gather_mm: need 4 | P ({P}) | Kc ({kc}), {TILE_ROWS} | rows_per_group "
                f"({rows_per_group}) | M ({m}), 4 | F")
    expect_rule(split_k == 1 or out.dtype == torch.float32, "gather_mm: split_k needs float32 out")
    expect(a, "a", a.dtype)
    expect(b, "b", a.dtype, (b.shape[0], b.shape[1]) if b.dim() == 2 else (-1, -1))
    expect(index, "index", torch.int32, (m // rows_per_group, kc // P))
    expect(out, "out", out.dtype, (m, b.shape[1]))
    features = b.shape[1]
    launch("products", f"gather_mm_{DTYPE_NAMES[a.dtype]}_out_{DTYPE_NAMES[out.dtype]}",
           (-(-features // TILE_COLUMNS), m // TILE_ROWS, split_k), (256,),
           (a, b, index, P, rows_per_group, out, m, kc, features))


def wgrad_regions_per_block(P: int, R: int, S: int) -> int:
    """Whole regions one region_wgrad block takes (0: the method's regions do not fit)."""
    kept_columns = (R - S) * P
    if kept_columns > WGRAD_COMPACT_ROWS:
        return 0
    per_block = WGRAD_COMPACT_ROWS // kept_columns
    return per_block if per_block * R * P * WGRAD_COLUMNS * 4 <= ACCUMULATOR_LIMIT else 0


def region_wgrad(values: torch.Tensor, x: torch.Tensor, index: torch.Tensor, P: int, R: int,
                 S: int, steps: int, out: torch.Tensor) -> None:
    """out (G*R*P, F) float32 = sum over steps of s_t^T x_t; values (steps*N, G*(R-S)*P),
    x (steps*N, F), index (steps, G*(R-S)) global slice numbers, ascending per region."""
    expect_kernel_dtype(values.dtype, "values")
    rows, kc = values.shape
    expect_rule(steps > 0 and rows % steps == 0, f"region_wgrad: {steps} steps must divide {rows}")
    expect_rule(0 <= S < R and P % 4 == 0 and kc % ((R - S) * P) == 0,
                f"region_wgrad: need 4 | P ({P}) and (R-S)*P dividing Kc={kc}")
    expect_rule(x.dim() == 2 and x.shape[1] % 4 == 0, "region_wgrad: x's width must be a "
                "multiple of 4")
    regions_per_block = wgrad_regions_per_block(P, R, S)
    expect_rule(regions_per_block > 0, f"region_wgrad: (R-S)*P={(R - S) * P} compact columns "
                f"per region or R*P={R * P} rows exceed the shared-memory accumulator")
    regions = kc // ((R - S) * P)
    features = x.shape[1] if x.dim() == 2 else -1
    expect(values, "values", values.dtype)
    expect(x, "x", values.dtype, (rows, features))
    expect(index, "index", torch.int32, (steps, regions * (R - S)))
    expect(out, "out", torch.float32, (regions * R * P, features))
    launch("products", f"region_wgrad_{DTYPE_NAMES[values.dtype]}",
           (-(-features // WGRAD_COLUMNS), -(-regions // regions_per_block)), (128,),
           (values, x, index, P, R, S, steps, rows // steps, features, kc, regions_per_block,
            out), shared_mem=regions_per_block * R * P * WGRAD_COLUMNS * 4)


def step_column_sums(values: torch.Tensor, slot: torch.Tensor, P: int, steps: int,
                     out: torch.Tensor) -> None:
    """out (steps, 4H) float32: per step, the column sums of s_t at the gate columns;
    slot (steps, 4H/P) gives each slice's compact position or -1 (dropped)."""
    expect_kernel_dtype(values.dtype, "values")
    rows, kc = values.shape
    expect_rule(steps > 0 and rows % steps == 0, f"step_column_sums: {steps} steps must divide {rows}")
    width = slot.shape[1] * P if slot.dim() == 2 else -1
    expect(values, "values", values.dtype)
    expect(slot, "slot", torch.int32, (steps, width // P))
    expect(out, "out", torch.float32, (steps, width))
    launch("products", f"step_column_sums_{DTYPE_NAMES[values.dtype]}",
           (-(-width // 32), steps), (32, 8), (values, slot, P, rows // steps, kc, width, out))


def zero_dropped_blocks(dnet: torch.Tensor, keep_mask: torch.Tensor, My: int, Mx: int) -> None:
    """Zero, in place, the My x Mx blocks of dnet whose keep_mask (N/My, 4H/Mx) entry is 0."""
    expect_kernel_dtype(dnet.dtype, "dnet")
    n, width = dnet.shape
    expect_rule(n % My == 0 and width % Mx == 0, "zero_dropped_blocks: My | N and Mx | 4H")
    expect(dnet, "dnet", dnet.dtype)
    expect(keep_mask, "keep_mask", torch.uint8, (n // My, width // Mx))
    launch("products", f"zero_dropped_blocks_{DTYPE_NAMES[dnet.dtype]}",
           (-(-(n * width) // 256),), (256,), (dnet, keep_mask, n, width, My, Mx))
