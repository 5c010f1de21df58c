"""Launchers for the indexed tensor-core products in products.cu."""

from __future__ import annotations

import torch

from sparsetrain.kernels._checks import expect, expect_kernel_dtype, expect_rule
from sparsetrain.kernels._loader import DTYPE_NAMES, launch

# Mirrors products.cu's tile constants (GM_* for gather_mm, WG_* for region_wgrad).
TILE_COLUMNS = 128   # gather_mm: output columns per block
TILE_ROWS = 64       # gather_mm: output rows per block (8 warps, 2 x 4)
TILE_DEPTH = 32
GATHER_STAGES = 4
WGRAD_COLUMNS = 128  # region_wgrad: output columns per block (8 warps, 2 x 4)
WGRAD_COMPACT_ROWS = 64
WGRAD_DEPTH = 32
WGRAD_STAGES = 3
WGRAD_ACCUMULATOR_STRIDE = WGRAD_COLUMNS + 8
ACCUMULATOR_ROWS = 256  # region_wgrad's shared accumulator: 136 KB of float32
GATHER_OUTPUTS = {(torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                  (torch.bfloat16, torch.bfloat16)}


def chunk_elements(dtype: torch.dtype) -> int:
    """Elements per 16-byte asynchronous copy: row lengths must be multiples of this."""
    return 16 // (2 if dtype == torch.bfloat16 else 4)


def _padded(width: int, dtype: torch.dtype) -> int:
    return width + chunk_elements(dtype)


def gather_shared_bytes(dtype: torch.dtype, kc: int, P: int, split_k: int) -> int:
    """The tile stages, then one int per index entry of a block's share of Kc."""
    stage = (TILE_ROWS * _padded(TILE_DEPTH, dtype) + TILE_DEPTH * _padded(TILE_COLUMNS, dtype))
    per_split = -(-kc // split_k)
    depth = -(-per_split // TILE_DEPTH) * TILE_DEPTH  # the kernel's k_len
    return GATHER_STAGES * stage * dtype.itemsize + 4 * (-(-depth // P) + 2)


def wgrad_shared_bytes(dtype: torch.dtype, accumulator_rows: int) -> int:
    stage = WGRAD_DEPTH * (_padded(WGRAD_COMPACT_ROWS, dtype) + _padded(WGRAD_COLUMNS, dtype))
    return (accumulator_rows * WGRAD_ACCUMULATOR_STRIDE * 4
            + WGRAD_STAGES * stage * dtype.itemsize)


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
    chunk = chunk_elements(a.dtype)
    expect_rule(kc % chunk == 0 and b.shape[1] % chunk == 0,
                f"gather_mm: Kc ({kc}) and F ({b.shape[1]}) must be multiples of {chunk} "
                f"for {a.dtype}")
    expect_rule(split_k == 1 or out.dtype == torch.float32, "gather_mm: split_k needs float32 out")
    expect(a, "a", a.dtype)
    expect(b, "b", a.dtype, (b.shape[0], b.shape[1]) if b.dim() == 2 else (-1, -1))
    expect(index, "index", torch.int32, (m // rows_per_group, kc // P))
    expect(out, "out", out.dtype, (m, b.shape[1]))
    features = b.shape[1]
    launch("products", f"gather_mm_{DTYPE_NAMES[a.dtype]}_out_{DTYPE_NAMES[out.dtype]}",
           (-(-features // TILE_COLUMNS), m // TILE_ROWS, split_k), (256,),
           (a, b, index, P, rows_per_group, out, m, kc, features),
           shared_mem=gather_shared_bytes(a.dtype, kc, P, split_k))


def wgrad_regions_per_block(P: int, R: int, S: int) -> int:
    """Whole regions one region_wgrad block takes (0: the method's regions do not fit).

    A block's compact columns start on a 16-byte boundary in either dtype (a multiple of 8).
    """
    kept_columns = (R - S) * P
    per_block = min(WGRAD_COMPACT_ROWS // kept_columns, ACCUMULATOR_ROWS // (R * P))
    while per_block > 1 and (per_block * kept_columns) % 8:
        per_block -= 1
    if per_block == 0 or (per_block * kept_columns) % 8:
        return 0
    return per_block


WGRAD_TARGET_BLOCKS = 264  # two waves on an H100: fewer blocks split the steps between them
WGRAD_LEAST_STEPS = 4      # steps per block, at least


def region_wgrad(values: torch.Tensor, x: torch.Tensor, index: torch.Tensor, P: int, R: int,
                 S: int, steps: int, out: torch.Tensor) -> None:
    """out (G*R*P, F) float32 = sum over steps of s_t^T x_t; values (steps*N, G*(R-S)*P),
    x (steps*N, F), index (steps, G*(R-S)) global slice numbers, ascending per region.

    Where the (column, region) blocks are too few to fill the GPU, the steps are split
    between blocks that add into out (zeroed here first)."""
    expect_kernel_dtype(values.dtype, "values")
    rows, kc = values.shape
    expect_rule(steps > 0 and rows % steps == 0, f"region_wgrad: {steps} steps must divide {rows}")
    expect_rule(0 <= S < R and P % 4 == 0 and kc % ((R - S) * P) == 0,
                f"region_wgrad: need 4 | P ({P}) and (R-S)*P dividing Kc={kc}")
    expect_rule(x.dim() == 2 and x.shape[1] % 4 == 0, "region_wgrad: x's width must be a "
                "multiple of 4")
    regions_per_block = wgrad_regions_per_block(P, R, S)
    expect_rule(regions_per_block > 0, f"region_wgrad: (R-S)*P={(R - S) * P} compact columns "
                f"per region or R*P={R * P} rows exceed the shared-memory accumulator "
                f"(or no whole number of regions fills a multiple of 8 columns)")
    chunk = chunk_elements(values.dtype)
    expect_rule(kc % chunk == 0 and (x.dim() != 2 or x.shape[1] % chunk == 0),
                f"region_wgrad: Kc ({kc}) and x's width must be multiples of {chunk} "
                f"for {values.dtype}")
    regions = kc // ((R - S) * P)
    features = x.shape[1] if x.dim() == 2 else -1
    expect(values, "values", values.dtype)
    expect(x, "x", values.dtype, (rows, features))
    expect(index, "index", torch.int32, (steps, regions * (R - S)))
    expect(out, "out", torch.float32, (regions * R * P, features))
    grid = (-(-features // WGRAD_COLUMNS), -(-regions // regions_per_block))
    split = max(1, min(steps // WGRAD_LEAST_STEPS, WGRAD_TARGET_BLOCKS // (grid[0] * grid[1])))
    if split > 1:
        out.zero_()
    launch("products", f"region_wgrad_{DTYPE_NAMES[values.dtype]}", (*grid, split), (256,),
           (values, x, index, P, R, S, steps, rows // steps, features, kc, regions_per_block,
            out), shared_mem=wgrad_shared_bytes(values.dtype, regions_per_block * R * P))


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
