"""Launchers for the fused LSTM cell steps in pointwise.cu (checks first, then one launch)."""

from __future__ import annotations

import torch

from sparsetrain.kernels._checks import expect, expect_kernel_dtype, expect_rule
from sparsetrain.kernels._loader import DTYPE_NAMES, launch

NORM_LAYOUTS = {"none": 0, "coarse": 1, "fine": 2}
ROWS_PER_THREAD_BLOCK = 8


def _hidden(net: torch.Tensor) -> tuple[int, int]:
    expect_kernel_dtype(net.dtype, "net")
    rows, width = net.shape
    expect_rule(width % 128 == 0, f"4H must be a multiple of 128 (H of 32), got {width}")
    return rows, width // 4


def forward_step(net: torch.Tensor, c_prev: torch.Tensor, gates: torch.Tensor,
                 c: torch.Tensor, h: torch.Tensor) -> None:
    """gates = act(net), c = f*c_prev + i*g, h = o*tanh(c); c in float32, the rest net's dtype."""
    n, hidden = _hidden(net)
    expect(net, "net", net.dtype, (n, 4 * hidden))
    expect(c_prev, "c_prev", torch.float32, (n, hidden))
    expect(gates, "gates", net.dtype, (n, 4 * hidden))
    expect(c, "c", torch.float32, (n, hidden))
    expect(h, "h", net.dtype, (n, hidden))
    launch("pointwise", f"lstm_forward_step_{DTYPE_NAMES[net.dtype]}",
           (hidden // 32, -(-n // ROWS_PER_THREAD_BLOCK)), (32, ROWS_PER_THREAD_BLOCK),
           (net, c_prev, gates, c, h, n, hidden))


def norm_shape(layout: str, rows: int, width: int, group: int, rows_per_chunk: int) -> tuple:
    chunks = -(-rows // rows_per_chunk)
    return (chunks, width // group) if layout == "coarse" else (width // group, chunks)


def _expect_cell_tensors(dh_rec: torch.Tensor, grad_out: torch.Tensor, dc: torch.Tensor,
                         gates: torch.Tensor, c: torch.Tensor, c_prev: torch.Tensor,
                         dnet: torch.Tensor, n: int, hidden: int) -> None:
    """What both backward cell steps read and write: float32 states, the rest gates' dtype."""
    dtype = gates.dtype
    for name, tensor, shape in [("dh_rec", dh_rec, (n, hidden)), ("dc", dc, (n, hidden)),
                                ("c", c, (n, hidden)), ("c_prev", c_prev, (n, hidden))]:
        expect(tensor, name, torch.float32, shape)
    expect(grad_out, "grad_out", dtype, (n, hidden))
    expect(gates, "gates", dtype, (n, 4 * hidden))
    expect(dnet, "dnet", dtype, (n, 4 * hidden))


def backward_step(dh_rec: torch.Tensor, grad_out: torch.Tensor, dc: torch.Tensor,
                  gates: torch.Tensor, c: torch.Tensor, c_prev: torch.Tensor,
                  dnet: torch.Tensor, norms: torch.Tensor | None = None, group: int = 1,
                  rows_per_chunk: int = 32, layout: str = "none",
                  clear_dh_rec: bool = False) -> None:
    """dnet from dh = dh_rec + grad_out and dc; dc becomes dc_{t-1}; with clear_dh_rec, dh_rec
    becomes zeros once read (for a split-K product that adds into it next).

    With layout "coarse" (norms: chunks x 4H/group) or "fine" (norms: 4H/group x chunks), also
    the squared L2 norm of the stored dnet over each `group` columns x `rows_per_chunk` rows.
    """
    n, hidden = _hidden(gates)
    _expect_cell_tensors(dh_rec, grad_out, dc, gates, c, c_prev, dnet, n, hidden)
    dtype = gates.dtype
    expect_rule(layout in NORM_LAYOUTS, f"layout: one of {', '.join(NORM_LAYOUTS)}, got {layout!r}")
    if layout != "none":
        expect_rule(group in (1, 2, 4, 8, 16, 32), f"group: a power of two <= 32, got {group}")
        expect_rule(rows_per_chunk > 0, f"rows_per_chunk: must be > 0, got {rows_per_chunk}")
        expect(norms, "norms", torch.float32,
               norm_shape(layout, n, 4 * hidden, group, rows_per_chunk))
    units = 2 if hidden % 64 == 0 else 1  # adjacent hidden units per thread
    entry = "lstm_backward_step_pairs" if units == 2 else "lstm_backward_step"
    launch("pointwise", f"{entry}_{DTYPE_NAMES[dtype]}",
           (hidden // (32 * units), -(-n // rows_per_chunk)), (32, ROWS_PER_THREAD_BLOCK),
           (dh_rec, grad_out, dc, gates, c, c_prev, dnet,
            norms if norms is not None else dc, n, hidden, group, rows_per_chunk,
            NORM_LAYOUTS[layout], int(clear_dh_rec)))


# 128 threads: 4 rows of the block at a time; a cluster's blocks then fit in one wave at the
# bench shapes, where 256 or more ran 1.1-4x slower (benchmarks/results/coarse_step.json)
FUSED_COARSE_THREADS = 128
FUSED_COARSE_ROW_SHARES = 8  # pointwise.cu's ROW_SHARES: the blocks of a cluster
FUSED_COARSE_SHARED_LIMIT = 200 * 1024  # of the 227 KB a Hopper block may have


def fused_coarse_units(P: int, R: int) -> int:
    """Hidden units a cluster of the fused coarse step owns: whole regions of every gate."""
    return max(32, P * R)


def fused_coarse_shared_bytes(rows: int, P: int, R: int, dtype: torch.dtype,
                              threads: int = FUSED_COARSE_THREADS,
                              shares: int = FUSED_COARSE_ROW_SHARES) -> int:
    units = fused_coarse_units(P, R)
    columns, slices = 4 * units, 4 * units // P
    share = -(-rows // shares)
    sums = (threads // units) * columns + 3 * slices  # partial per line; norms twice; kept
    return 4 * sums + share * columns * (torch.finfo(dtype).bits // 8)


def fused_coarse_fits(rows: int, hidden: int, P: int, R: int, dtype: torch.dtype) -> bool:
    """Whether backward_step_coarse takes this shape: each cluster's regions inside one gate
    (its units divide H), at most 128 units, and a block's share of the rows in shared
    memory."""
    units = fused_coarse_units(P, R)
    return (units <= FUSED_COARSE_THREADS and hidden % units == 0
            and fused_coarse_shared_bytes(rows, P, R, dtype) <= FUSED_COARSE_SHARED_LIMIT)


def backward_step_coarse(dh_rec: torch.Tensor, grad_out: torch.Tensor, dc: torch.Tensor,
                         gates: torch.Tensor, c: torch.Tensor, c_prev: torch.Tensor,
                         dnet: torch.Tensor, P: int, R: int, S: int, index: torch.Tensor,
                         slot: torch.Tensor, energy: torch.Tensor) -> None:
    """backward_step with clear_dh_rec, fused with coarse's selection over all N rows, as
    select.coarse_select makes it after the cell step: each region of R slices (P columns)
    keeps its R - S of largest squared norm (of the stored dnet; ties keep the lower slice).
    dnet gets the dropped slices as zeros; also writes index (G, R-S) the kept global slices
    ascending per region, slot (4H/P,) each slice's compact slice or -1 and energy (G, 2)
    kept and total squared norm per region."""
    n, hidden = _hidden(gates)
    dtype, width = gates.dtype, 4 * hidden
    expect_rule(0 <= S < R and width % (P * R) == 0,
                f"backward_step_coarse: need 0 <= S ({S}) < R ({R}) and P*R dividing 4H")
    expect_rule(fused_coarse_fits(n, hidden, P, R, dtype),
                f"backward_step_coarse: H ({hidden}) must be a multiple of "
                f"{fused_coarse_units(P, R)} (at most {FUSED_COARSE_THREADS}) and N ({n}) rows "
                f"fit shared memory")
    regions, keep = width // (P * R), R - S
    _expect_cell_tensors(dh_rec, grad_out, dc, gates, c, c_prev, dnet, n, hidden)
    expect(index, "index", torch.int32, (regions, keep))
    expect(slot, "slot", torch.int32, (width // P,))
    expect(energy, "energy", torch.float32, (regions, 2))
    units = fused_coarse_units(P, R)
    launch("pointwise", f"lstm_backward_step_coarse_{DTYPE_NAMES[dtype]}",
           (hidden // units, FUSED_COARSE_ROW_SHARES), (units, FUSED_COARSE_THREADS // units),
           (dh_rec, grad_out, dc, gates, c, c_prev, dnet, n, hidden, P, R, keep, index, slot,
            energy), shared_mem=fused_coarse_shared_bytes(n, P, R, dtype))
