"""Launcher for transpose.cu: a matrix's transpose as a new contiguous tensor, for the
products that read both operands K-major (tf32 wgmma)."""

from __future__ import annotations

import torch

from sparsetrain.kernels._checks import expect, expect_kernel_dtype, expect_rule
from sparsetrain.kernels._loader import DTYPE_NAMES, launch

TILE, ROWS = 32, 8  # transpose.cu's TRANSPOSE_TILE, TRANSPOSE_ROWS
MAX_GRID_Y = 65535


def transposed(matrix: torch.Tensor) -> torch.Tensor:
    """matrix (R, C), contiguous float32 or bf16 on the GPU -> its transpose (C, R), a new
    contiguous tensor."""
    expect_kernel_dtype(matrix.dtype, "matrix")
    expect_rule(matrix.dim() == 2, f"transposed: need a matrix, got {matrix.dim()} dimensions")
    rows, columns = matrix.shape
    expect_rule(-(-rows // TILE) <= MAX_GRID_Y, f"transposed: at most {MAX_GRID_Y * TILE} rows")
    expect(matrix, "matrix", matrix.dtype)
    out = matrix.new_empty(columns, rows)
    if matrix.numel():
        launch("transpose", f"transpose_{DTYPE_NAMES[matrix.dtype]}",
               (-(-columns // TILE), -(-rows // TILE)), (TILE, ROWS),
               (matrix, out, rows, columns))
    return out
