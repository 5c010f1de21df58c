"""The backward pass of one layer on the kernels, one plan per method.

Every plan runs the per-step loop t = T-1 .. 0 (fused cell step -> selection -> dh_{t-1} from
s_t; its kernels launched early, each while the one before finishes: _loader.early_launches),
keeps s_t of all steps, then forms dx, dW_ih, dW_hh and db once over all T*N rows, on three
side streams (parallel branches of the captured graph).

    dense   s_t = dnet_t; the products run on the same indexed engine with every slice kept
            (float32 on an H100: on tf32 wgmma, which reads W^T, s^T, x^T made once each)
    coarse  norms fused into the cell step; each step's product selects the kept slices
            itself, reads them from dnet and writes the step's compact form and index (where
            a step's dnet is large, xl, a selection of its own writes them and zeroes the
            dropped slices, and the product reads the compact form); it and
            dx read only the kept slices (index into W rows, nothing copied); the weight
            gradients read dnet with the dropped slices as zeros (faster on H100 than
            skipping them, as they never wait per step): zeroed once in dnet, then dense's
            kernel, where that runs on the copy engine; else masked_wgrad where it fits; else
            each step's compact product added into its kept dW rows. In float32 on tf32
            wgmma (where 128 rows divide N) every product runs as dense's instead, over dnet
            with each step's dropped slices zeroed by the cell step, which selects over all
            rows in a cluster of blocks (else by a selection of its own): faster there than
            the indexed mma.sync kernels
    fine    norms fused into the cell step; the selection zeroes the dropped blocks in dnet
            (it writes no compact form: nothing reads it); the products run dense over it
    meprop  unified top-k as its authors do it: rank the columns, index_select, dense GEMMs,
            index_add into the weight gradients, per step
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from sparsetrain.kernels import products
from sparsetrain.kernels._loader import early_launches
from sparsetrain.kernels.pointwise import (backward_step, backward_step_coarse,
                                           fused_coarse_fits, norm_shape)
from sparsetrain.kernels.select import (coarse_select, fine_select, step_summary,
                                        zero_dropped_slices)
from sparsetrain.kernels.transpose import transposed
from sparsetrain.sparsify import Sparsifier

DENSE_SLICE = 4        # dense runs as coarse with P=4, R=8, S=0
DENSE_REGION = 8
DENSE_ROWS = 64        # the slices dense's products read W in (every slice kept)
COARSE_ROWS_PER_CHUNK = 8   # rows per partial norm: more, smaller cell-step blocks
COARSE_AS_DENSE_ROWS = 128  # float32 coarse runs dense's products where these divide N
# where coarse's products run as dense's (float32 on tf32 wgmma), its cell step selects too
# where the shape fits (pointwise.fused_coarse_fits); False: coarse_select after the cell step
FUSED_COARSE_STEP = True
# elsewhere coarse selects on its own, writing the step's compact form, before a plain indexed
# product where a step's dnet has at least this many bytes (xl bf16: 4 MB), and inside the
# product (select_gather_mm) below it (benchmarks/NOTES.md v20)
COMPACT_BEFORE_PRODUCT_BYTES = 2 << 20


@dataclass
class LayerState:
    x: torch.Tensor          # (T, N, I)
    w_ih: torch.Tensor
    w_hh: torch.Tensor
    hidden: torch.Tensor     # (T+1, N, H): h0, then each step's output
    cells: torch.Tensor      # (T+1, N, H) float32
    gates: torch.Tensor      # (T, N, 4H)
    d_output: torch.Tensor   # (T, N, H)
    d_h_last: torch.Tensor | None
    d_c_last: torch.Tensor | None


@dataclass
class LayerGrads:
    d_x: torch.Tensor
    d_h0: torch.Tensor
    d_c0: torch.Tensor
    d_w_ih: torch.Tensor
    d_w_hh: torch.Tensor
    d_bias: torch.Tensor
    # sparsify.summarize of the per-step records (see record_stats); None: all kept
    step_summary: torch.Tensor | None = None


def plan_problem(sparsifier: Sparsifier, batch: int, width: int) -> str | None:
    """Why no kernel plan fits this method and shape (None when one does)."""
    name, spec = sparsifier.name, sparsifier.spec
    if name == "dense":
        return None
    if name == "coarse":
        return products.coarse_problem(spec["P"], spec["R"], spec["S"], width)
    if name == "fine":
        if spec["Mx"] not in (1, 2, 4, 8, 16, 32) or batch % spec["My"]:
            return "fine needs Mx a power of two <= 32 and My dividing N"
        return None
    if name == "meprop" and sparsifier.acts_on == "dnet":
        return None
    return f"method {name} has no kernel plan"


def _step_summary(energy: torch.Tensor, kept: int, of: int) -> torch.Tensor:
    """sparsify.summarize of the per-step records, in one launch (so a captured graph makes it
    too) from energy (T, G, 2): each step's kept and total squared norms per group (meprop's;
    coarse and fine hand step_summary to finish, which runs it beside the batched products)."""
    out = torch.empty(3, device=energy.device, dtype=torch.float64)
    step_summary(energy, kept, of, out)
    return out


def record_stats(sparsifier: Sparsifier, grads: LayerGrads) -> None:
    """Hand the per-step statistics to the sparsifier as its own per-call records would be
    (device tensors; no host sync). Dense steps count as calls that kept everything."""
    steps = grads.d_x.shape[0] // grads.d_h0.shape[0]
    sparsifier.record_steps(grads.step_summary, steps)


class _Loop:
    """Buffers and the per-step recurrence shared by the plans."""

    def __init__(self, state: LayerState) -> None:
        self.s = state
        self.steps, self.batch, self.hidden = state.d_output.shape
        self.width = 4 * self.hidden
        # Fresh buffers: the steps update both in place, and the caller's gradients must stay.
        self.dh = self._start(state.d_h_last)
        self.dc = self._start(state.d_c_last)

    def _start(self, gradient: torch.Tensor | None) -> torch.Tensor:
        if gradient is None:
            return torch.zeros(self.batch, self.hidden, device=self.s.x.device)
        return gradient.to(torch.float32, memory_format=torch.contiguous_format, copy=True)

    def cell(self, t: int, dnet: torch.Tensor, norms=None, group=1, rows=8, layout="none"):
        s = self.s
        backward_step(self.dh, s.d_output[t], self.dc, s.gates[t], s.cells[t + 1], s.cells[t],
                      dnet, norms, group, rows, layout, clear_dh_rec=True)

    def cell_coarse(self, t: int, dnet: torch.Tensor, P: int, R: int, S: int,
                    index: torch.Tensor, slot: torch.Tensor, energy: torch.Tensor) -> None:
        """The cell step with coarse's selection in it: dnet_t's dropped slices zeroed, the
        step's index, slot and energy written."""
        s = self.s
        backward_step_coarse(self.dh, s.d_output[t], self.dc, s.gates[t], s.cells[t + 1],
                             s.cells[t], dnet, P, R, S, index, slot, energy)

    def split(self, kept_columns: int, plain: bool = False) -> int:
        """The per-step product's split-K (the same every step: worked out once per plan);
        plain: for `recur` over a compact form (products.step_split)."""
        return products.step_split(self.batch, self.hidden, kept_columns, self.s.x.dtype,
                                   self.s.x.device, plain)

    def recur(self, values: torch.Tensor, index: torch.Tensor, P: int, split: int) -> None:
        """dh_{t-1} = s_t W_hh into self.dh (zeroed by the cell step, as split-K adds)."""
        products.gather_mm(values, self.s.w_hh, index, P, self.batch, self.dh, split)

    def recur_dense(self) -> Callable[[torch.Tensor], None]:
        """dense's dh_{t-1} = s_t W_hh, as a function of s_t: float32 on tf32 wgmma where it
        runs (W_hh transposed once: it reads K-major operands), else gather_mm with every
        slice kept (W_hh read in 64-row runs)."""
        dtype, device = self.s.x.dtype, self.s.x.device
        if products.kmajor_on_tma(dtype, device):
            w_hh_t = transposed(self.s.w_hh)
            split = products.kmajor_split(self.batch, self.hidden, self.width)
            return lambda s_t: products.kmajor_mm(s_t, w_hh_t, self.dh, split)
        rows = self.dense_index(DENSE_ROWS)[0][:1]
        split = self.split(self.width)
        return lambda s_t: self.recur(s_t, rows, DENSE_ROWS, split)

    def recur_selected(self, dnet: torch.Tensor, partial: torch.Tensor, P: int, R: int, S: int,
                       split: int, index: torch.Tensor, slot: torch.Tensor,
                       values: torch.Tensor, energy: torch.Tensor) -> None:
        """The same with coarse's selection made by the product, which writes the step's
        index, slot, compact values and energy."""
        products.select_gather_mm(dnet, partial, self.s.w_hh, P, R, S, self.dh, split, index,
                                  slot, values, energy)

    def h_prev(self) -> torch.Tensor:
        """h_{t-1} of every step, (T*N, H): a view of the forward's hidden states."""
        return self.s.hidden[:-1].reshape(-1, self.hidden)

    def finish(self, values: torch.Tensor, index: torch.Tensor, slot: torch.Tensor, P: int,
               R: int, S: int, dnet: torch.Tensor | None = None,
               summary: Callable[[torch.Tensor], None] | None = None,
               dropped_zeroed: bool = False) -> LayerGrads:
        """dx, dW_ih, dW_hh, db from s of all steps in compact form (values: T*N x Kc); with
        dnet (T*N x 4H) the weight gradients read it: as dense's, once its dropped slices are
        zeroed (here, unless the step loop did: dropped_zeroed), where they run on the
        copy-engine-fed kernel, else masked where they can;
        float32 on tf32 wgmma: dx too (it reads no index). The three products run on side
        streams (parallel branches of a captured graph), so each one's last partial wave of
        blocks overlaps the others', and so do the conversions to the layer's dtype of the
        results formed in float32 (the weight gradients where their kernel writes bf16 are
        not) and `summary(out)`, which writes the step summary (3 float64) into out
        (LayerGrads.step_summary)."""
        s, dtype, device = self.s, self.s.x.dtype, self.s.x.device
        x, h_prev = s.x.reshape(-1, s.x.shape[2]), self.h_prev()
        # Every slice kept (S = 0): compact column k is gate column k in every step, so dx may
        # read W_ih in runs of 64 rows (whole tiles of the copy-engine-fed kernel).
        dx_index, dx_slice = ((self.dense_index(DENSE_ROWS)[0], DENSE_ROWS) if S == 0
                              else (index, P))

        # The weight gradients read s whole (dense: values; coarse: dnet with its dropped
        # slices zeroed) where that runs on the copy engine; so does dx where it runs on tf32
        # wgmma (float32), which reads no index.
        whole = dnet if dnet is not None else values if S == 0 else None
        as_dense = whole is not None and products.keep_all_on_tma(dtype, device)
        whole_dx = as_dense and products.kmajor_on_tma(dtype, device)

        def weight_gradient_dtype(features: int) -> torch.dtype:
            """The layer's where the kernel can write it (no conversion after), else float32."""
            return (products.keep_all_out_dtype(dtype, self.width, features, self.steps)
                    if as_dense else torch.float32)

        # allocated on the current stream, before any side stream writes them (a side stream's
        # own allocation could be handed to its next work while the caller still reads it)
        d_x = torch.empty(x.shape, device=device, dtype=dtype)
        d_w_ih = torch.empty(self.width, x.shape[1], device=device,
                             dtype=weight_gradient_dtype(x.shape[1]))
        d_w_hh = torch.empty(self.width, self.hidden, device=device,
                             dtype=weight_gradient_dtype(self.hidden))
        columns = torch.empty(self.steps, self.width, device=device)
        column_sums = torch.empty(self.width, device=device)
        results = {name: like if dtype == like.dtype else torch.empty_like(like, dtype=dtype)
                   for name, like in (("d_w_ih", d_w_ih), ("d_w_hh", d_w_hh),
                                      ("d_bias", column_sums))}
        summary_out = (None if summary is None
                       else torch.empty(3, device=device, dtype=torch.float64))

        def convert(name: str, source: torch.Tensor) -> None:
            if results[name] is not source:  # formed in float32
                results[name].copy_(source)

        if as_dense:
            zeroed, ready, source = torch.cuda.Event(), torch.cuda.Event(), []

        def d_x_and_bias() -> None:
            if whole_dx:
                w_ih_t = transposed(s.w_ih)  # K-major, as tf32 wgmma reads it
                torch.cuda.current_stream().wait_event(zeroed)
                products.kmajor_mm(whole, w_ih_t, d_x)
            else:
                products.gather_mm(values, s.w_ih, dx_index, dx_slice, self.batch, d_x)
            products.step_column_sums(values, index, P, self.width, columns)
            torch.sum(columns, 0, out=column_sums)
            convert("d_bias", column_sums)

        def weight_gradient(inputs: torch.Tensor, d_w: torch.Tensor, first: bool) -> None:
            if as_dense:
                # dnet's dropped slices zeroed once, beside dx (a pass bound by memory, dx by
                # the tensor cores), and s put in the form the kernel reads (float32: its
                # transpose), before either weight gradient reads it
                if first:
                    if dnet is not None and not dropped_zeroed:
                        zero_dropped_slices(dnet, slot, P, self.steps)
                    zeroed.record()
                    source.append(products.keep_all_source(whole))
                    ready.record()
                else:
                    torch.cuda.current_stream().wait_event(ready)
                products.keep_all_wgrad(source[0], inputs, self.steps, d_w)
            elif dnet is not None and products.masked_wgrad_fits(
                    dtype, device, P, self.steps, self.width, inputs.shape[1]):
                products.masked_wgrad(dnet, inputs, slot, P, self.steps, d_w)
            else:
                products.region_wgrad(values, inputs, index, slot, P, R, S, self.steps, d_w)

        def input_weights() -> None:
            weight_gradient(x, d_w_ih, True)
            convert("d_w_ih", d_w_ih)

        def hidden_weights() -> None:
            if summary is not None:  # before the wait: it reads only the loop's records
                summary(summary_out)
            weight_gradient(h_prev, d_w_hh, False)
            convert("d_w_hh", d_w_hh)

        main = torch.cuda.current_stream()
        sides = _side_streams(main.device)
        # the first weight gradient first: it records the events the others wait on
        for side, work in zip(sides, (input_weights, d_x_and_bias, hidden_weights)):
            side.wait_stream(main)
            with torch.cuda.stream(side):
                work()
        d_h0, d_c0 = self.dh.to(dtype), self.dc.to(dtype)  # beside the branches
        for side in sides:
            main.wait_stream(side)
        return LayerGrads(d_x, d_h0, d_c0, results["d_w_ih"], results["d_w_hh"],
                          results["d_bias"], summary_out)

    def dense_index(self, P: int = DENSE_SLICE) -> tuple[torch.Tensor, torch.Tensor]:
        """Every slice of P columns kept in every step: (index, slot), both the identity."""
        slices = torch.arange(self.width // P, device=self.s.x.device, dtype=torch.int32)
        table = slices.expand(self.steps, -1).contiguous()
        return table, table


@functools.cache
def _side_streams(device: torch.device) -> tuple[torch.cuda.Stream, ...]:
    return tuple(torch.cuda.Stream(device) for _ in range(3))


def _dense(sparsifier: Sparsifier, loop: _Loop, mask_step=None, summary=None) -> LayerGrads:
    dnet = loop.s.x.new_empty(loop.steps, loop.batch, loop.width)
    index, slot = loop.dense_index()
    recur = loop.recur_dense()
    with early_launches():
        for t in range(loop.steps - 1, -1, -1):
            if mask_step is None:
                loop.cell(t, dnet[t])
            else:
                mask_step(t, dnet[t])
            recur(dnet[t])
    return loop.finish(dnet.reshape(-1, loop.width), index, slot, DENSE_SLICE, DENSE_REGION, 0,
                       summary=summary)


def _coarse(sparsifier: Sparsifier, loop: _Loop) -> LayerGrads:
    P, R, S = (sparsifier.spec[k] for k in ("P", "R", "S"))
    dtype, device, T, N = loop.s.x.dtype, loop.s.x.device, loop.steps, loop.batch
    regions, keep = loop.width // (P * R), R - S
    index = torch.empty(T, regions, keep, device=device, dtype=torch.int32)
    slot = torch.empty(T, loop.width // P, device=device, dtype=torch.int32)
    energy = torch.empty(T, regions, 2, device=device)
    dnet = loop.s.x.new_empty(T, N, loop.width)
    summary = functools.partial(step_summary, energy, R - S, R)
    as_dense = products.kmajor_on_tma(dtype, device) and N % COARSE_AS_DENSE_ROWS == 0
    # where the products run as dense's, the zeroing selection runs in the cell step where it
    # fits (benchmarks/NOTES.md v11); elsewhere the cell step leaves partial norms for it
    fused = as_dense and FUSED_COARSE_STEP and fused_coarse_fits(N, loop.hidden, P, R, dtype)
    # bf16 (and float32 off tf32 wgmma): a selection of its own before a plain product, which
    # also zeroes the dropped slices (finish then need not), or one inside the product
    step_bytes = N * loop.width * dtype.itemsize
    compact_first = not as_dense and step_bytes >= COMPACT_BEFORE_PRODUCT_BYTES
    if not fused:
        partial = torch.empty(norm_shape("coarse", N, loop.width, P, COARSE_ROWS_PER_CHUNK),
                              device=device)
    if as_dense:
        # float32 on tf32 wgmma: the products run as dense's over dnet with each step's dropped
        # slices zeroed, faster than the indexed mma.sync kernels where the batch fills whole
        # 128-row tiles (benchmarks/NOTES.md v10; at N = 64 the per-step product was slower)
        recur = loop.recur_dense()
        with early_launches():
            for t in range(T - 1, -1, -1):
                if fused:
                    loop.cell_coarse(t, dnet[t], P, R, S, index[t], slot[t], energy[t])
                else:
                    loop.cell(t, dnet[t], partial, P, COARSE_ROWS_PER_CHUNK, "coarse")
                    coarse_select(partial, dnet[t], P, R, S, index[t], slot[t], energy[t])
                recur(dnet[t])
        return loop.finish(dnet.reshape(T * N, -1), *loop.dense_index(), DENSE_SLICE,
                           DENSE_REGION, 0, summary=summary)
    values = loop.s.x.new_empty(T, N, regions * keep * P)
    split = loop.split(values.shape[2], plain=compact_first)
    with early_launches():
        for t in range(T - 1, -1, -1):
            loop.cell(t, dnet[t], partial, P, COARSE_ROWS_PER_CHUNK, "coarse")
            if compact_first:
                coarse_select(partial, dnet[t], P, R, S, index[t], slot[t], energy[t],
                              values[t])
                loop.recur(values[t], index[t].reshape(1, -1), P, split)
            else:
                loop.recur_selected(dnet[t], partial, P, R, S, split, index[t], slot[t],
                                    values[t], energy[t])
    return loop.finish(values.reshape(T * N, -1), index.reshape(T, -1), slot, P, R, S,
                       dnet.reshape(T * N, -1), summary, dropped_zeroed=compact_first)


def _fine(sparsifier: Sparsifier, loop: _Loop) -> LayerGrads:
    My, Mx, K = (sparsifier.spec[k] for k in ("My", "Mx", "K"))
    device, T, N = loop.s.x.device, loop.steps, loop.batch
    blocks, slices = N // My, loop.width // Mx
    norms = torch.empty(slices, blocks, device=device)
    index = torch.empty(slices, blocks - K, device=device, dtype=torch.int32)
    energy = torch.empty(T, slices, 2, device=device)

    def select_step(t: int, dnet: torch.Tensor) -> None:
        loop.cell(t, dnet, norms, Mx, My, "fine")
        # no compact form: the products run dense over dnet with the dropped blocks zeroed
        fine_select(norms, dnet, My, Mx, K, index, None, energy[t])

    return _dense(sparsifier, loop, select_step,
                  functools.partial(step_summary, energy, blocks - K, blocks))


def _meprop(sparsifier: Sparsifier, loop: _Loop) -> LayerGrads:
    s, T, N, width = loop.s, loop.steps, loop.batch, loop.width
    dtype, count = s.x.dtype, max(1, round(sparsifier.spec["keep"] * width))
    x_flat = s.x.reshape(T, N, -1)
    h_prev = loop.h_prev().reshape(T, N, -1)
    dnet = s.x.new_empty(N, width)
    d_x = torch.empty_like(s.x)
    d_w_ih = torch.zeros(width, x_flat.shape[2], device=s.x.device, dtype=dtype)
    d_w_hh = torch.zeros(width, loop.hidden, device=s.x.device, dtype=dtype)
    d_bias = torch.zeros(width, device=s.x.device, dtype=dtype)
    energy = torch.empty(T, 1, 2, device=s.x.device)  # per step: kept, total squared norm
    for t in range(T - 1, -1, -1):
        loop.cell(t, dnet)
        columns = sparsifier.kept_columns(dnet)          # rank
        picked = dnet.index_select(1, columns)           # regroup the kept columns
        loop.dh = (picked @ s.w_hh.index_select(0, columns)).float()
        d_x[t] = picked @ s.w_ih.index_select(0, columns)
        d_w_ih.index_add_(0, columns, picked.t() @ x_flat[t])
        d_w_hh.index_add_(0, columns, picked.t() @ h_prev[t])
        d_bias.index_add_(0, columns, picked.sum(0))
        energy[t, 0, 0] = picked.float().square().sum()
        energy[t, 0, 1] = dnet.float().square().sum()
    return LayerGrads(d_x.reshape(T * N, -1), loop.dh.to(dtype), loop.dc.to(dtype), d_w_ih,
                      d_w_hh, d_bias, _step_summary(energy, count, width))


PLANS = {"dense": _dense, "coarse": _coarse, "fine": _fine, "meprop": _meprop}


def run(sparsifier: Sparsifier, state: LayerState) -> LayerGrads:
    """All gradients of the layer; statistics are left in `step_summary` for record_stats."""
    return PLANS[sparsifier.name](sparsifier, _Loop(state))
