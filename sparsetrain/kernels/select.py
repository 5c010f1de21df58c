"""Launchers for select.cu: the fine selection, coarse's on its own (coarse selects inside its
per-step product, products.select_gather_mm, except where a step's dnet is large), coarse's
dropped slices zeroed in dnet, and a backward's statistics in one launch."""

from __future__ import annotations

import torch

from sparsetrain.kernels._checks import expect, expect_kernel_dtype, expect_rule
from sparsetrain.kernels._loader import DTYPE_NAMES, launch
from sparsetrain.kernels.products import coarse_problem

MAX_GROUP = 1024     # blocks of a slice, times the slices of a block (select.cu's arrays)
# fine_select: a block decides up to FINE_SLICES adjacent slices (as MAX_GROUP allows), so that
# its threads move whole sectors of each row of dnet
FINE_SLICES, FINE_THREADS = 8, 256
SUMMARY_THREADS = 256  # step_summary: a warp per step, 8 at a time
ZERO_THREADS, ZERO_ROW_BLOCKS = 256, 1024  # zero_dropped_slices: rows in a grid stride
# coarse_select: a thread moves at most QUADS 4-column pieces of dnet (select.cu's
# COARSE_SELECT_QUADS: all its loads in flight at once); a block takes as many rows of as few
# regions as that allows (at most THREADS / R regions: one slice a thread to decide them), so
# that few blocks decide each region again
COARSE_SELECT_THREADS, COARSE_SELECT_QUADS = 256, 4


def fine_select(norms: torch.Tensor, dnet: torch.Tensor, My: int, Mx: int, K: int,
                index: torch.Tensor, values: torch.Tensor | None, energy: torch.Tensor) -> None:
    """Keep the B-K blocks of largest norm per slice; norms (C, B) squared block norms.

    index (C, B-K) row-block numbers; values (C, B-K, My, Mx), the kept blocks' compact form,
    or None where no one reads it (the plan's products run on dnet itself);
    energy (C, 2) kept and total squared norm. The dropped blocks of dnet become zeros.
    """
    expect_kernel_dtype(dnet.dtype, "dnet")
    n, width = dnet.shape
    expect_rule(n % My == 0 and width % Mx == 0, f"fine: My must divide N={n}, Mx 4H={width}")
    blocks, slices = n // My, width // Mx
    expect_rule(0 <= K < blocks <= MAX_GROUP,
                f"fine: need 0 <= K < N/My <= {MAX_GROUP}, got K={K}, N/My={blocks}")
    keep = blocks - K
    expect(dnet, "dnet", dnet.dtype)
    expect(norms, "norms", torch.float32, (slices, blocks))
    expect(index, "index", torch.int32, (slices, keep))
    if values is not None:
        expect(values, "values", dnet.dtype, (slices, keep, My, Mx))
    expect(energy, "energy", torch.float32, (slices, 2))
    group = min(FINE_SLICES, MAX_GROUP // blocks)
    launch("select", f"fine_select_{DTYPE_NAMES[dnet.dtype]}", (-(-slices // group),),
           (FINE_THREADS,), (norms, dnet, n, width, My, Mx, K, group, index,
                             values, energy))


def step_summary(energy: torch.Tensor, kept: int, of: int, out: torch.Tensor) -> None:
    """out (3,) float64 = sparsify.summarize of a backward's per-step records, from
    energy (T, G, 2): each step's kept and total squared norms per group; every step kept
    `kept` of `of` parts of dnet (slices, blocks or columns)."""
    steps, groups = (energy.shape[0], energy.shape[1]) if energy.dim() == 3 else (-1, -1)
    expect(energy, "energy", torch.float32, (steps, groups, 2))
    expect(out, "out", torch.float64, (3,))
    expect_rule(0 <= kept <= of and of > 0, f"step_summary: need 0 <= kept ({kept}) <= of ({of})")
    launch("select", "step_summary", (1,), (SUMMARY_THREADS,), (energy, steps, groups, kept, of, out))


def zero_dropped_slices(dnet: torch.Tensor, slot: torch.Tensor, P: int, steps: int) -> None:
    """Zero in dnet (steps*N, 4H) the slices of P columns each step dropped (slot (steps, 4H/P):
    -1 where dropped), in place."""
    expect_kernel_dtype(dnet.dtype, "dnet")
    rows, width = dnet.shape
    expect_rule(steps > 0 and rows % steps == 0 and P % 4 == 0 and width % P == 0,
                f"zero_dropped_slices: need {steps} steps dividing {rows} rows and 4 | P ({P}) "
                f"| 4H ({width})")
    expect(dnet, "dnet", dnet.dtype)
    expect(slot, "slot", torch.int32, (steps, width // P))
    grid = (-(-width // (4 * ZERO_THREADS)), min(rows, ZERO_ROW_BLOCKS))
    launch("select", f"zero_dropped_slices_{DTYPE_NAMES[dnet.dtype]}", grid, (ZERO_THREADS,),
           (dnet, slot, P, rows // steps, width, rows))


def coarse_select(partial: torch.Tensor, dnet: torch.Tensor, P: int, R: int, S: int,
                  index: torch.Tensor, slot: torch.Tensor, energy: torch.Tensor,
                  values: torch.Tensor | None = None) -> None:
    """One step of coarse's selection on its own, as select_gather_mm makes it: each region of
    R slices (P columns each) keeps its R - S of largest squared norm, summed over partial's
    (chunks, 4H/P) row chunks. Writes index (G, R-S), slot (4H/P,) and energy (G, 2) as
    select_gather_mm does, zeroes the dropped slices of dnet (N, 4H) in place and, unless
    values is None, copies the kept ones into values (N, G*(R-S)*P), the step's compact form."""
    expect_kernel_dtype(dnet.dtype, "dnet")
    expect_rule(dnet.dim() == 2, f"coarse_select: dnet must be (N, 4H), got {tuple(dnet.shape)}")
    n, width = dnet.shape
    problem = coarse_problem(P, R, S, width)
    expect_rule(problem is None, f"coarse_select: {problem}")
    expect_rule(n * width < 2**31, f"coarse_select: a step's dnet must have under 2^31 elements "
                f"(its offsets are 32-bit), got {n} x {width}")
    regions, keep, slices = width // (P * R), R - S, width // P
    chunks = partial.shape[0] if partial.dim() == 2 else -1
    expect(dnet, "dnet", dnet.dtype)
    expect(partial, "partial", torch.float32, (chunks, slices))
    expect(index, "index", torch.int32, (regions, keep))
    expect(slot, "slot", torch.int32, (slices,))
    expect(energy, "energy", torch.float32, (regions, 2))
    if values is not None:
        expect(values, "values", dnet.dtype, (n, regions * keep * P))
    pieces, region_pieces = COARSE_SELECT_THREADS * COARSE_SELECT_QUADS, R * P // 4
    per_block = max(1, min(COARSE_SELECT_THREADS // R, regions, pieces // (n * region_pieces)))
    region_blocks = -(-regions // per_block)
    rows_per_block = max(1, pieces // (per_block * region_pieces))
    launch("select", f"coarse_select_{DTYPE_NAMES[dnet.dtype]}",
           (region_blocks, -(-n // rows_per_block)), (COARSE_SELECT_THREADS,),
           (partial, chunks, R, keep, P, per_block, dnet, n, width, index, slot, energy,
            values), shared_mem=4 * per_block * (keep + R))
