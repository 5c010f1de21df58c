"""The forward pass of one layer on the kernels.

One GEMM projects the inputs of all T steps; per step one GEMM adds h_{t-1} W_hh^T and the
fused forward kernel makes the gates, c_t and h_t. Cell states stay float32. What the backward
needs (hidden states, cells, gates) comes back as a ForwardState. The GEMMs are cuBLAS's, but for
float32 on an H100, where they run on tf32 wgmma as the backward's do (products.kmajor_mm: x,
h and both weights are K-major as they stand), as cuDNN's LSTM runs float32 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsetrain.kernels import products
from sparsetrain.kernels._loader import early_launches
from sparsetrain.kernels.pointwise import forward_step


@dataclass
class ForwardInputs:
    x: torch.Tensor          # (T, N, I)
    h0: torch.Tensor         # (N, H)
    c0: torch.Tensor         # (N, H)
    w_ih: torch.Tensor       # (4H, I)
    w_hh: torch.Tensor       # (4H, H)
    bias: torch.Tensor | None  # b_ih + b_hh (4H), or None


@dataclass
class ForwardState:
    # (T+1, N, H): h0, then each step's output. One buffer, so that the weight gradient's
    # h_{t-1} of all steps is hidden[:-1] as it stands (no copy), and the output hidden[1:].
    hidden: torch.Tensor
    cells: torch.Tensor      # (T+1, N, H) float32
    gates: torch.Tensor      # (T, N, 4H)

    @property
    def output(self) -> torch.Tensor:
        return self.hidden[1:]


def run(inputs: ForwardInputs) -> ForwardState:
    x, w_hh = inputs.x, inputs.w_hh
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    flat = x.reshape(steps * batch, -1)
    tf32 = products.kmajor_on_tma(x.dtype, x.device)
    if tf32:
        projected = x.new_empty(steps * batch, 4 * hidden)
        products.kmajor_mm(flat, inputs.w_ih, projected)
        if inputs.bias is not None:
            projected += inputs.bias
    elif inputs.bias is not None:
        projected = torch.addmm(inputs.bias, flat, inputs.w_ih.t())
    else:
        projected = flat @ inputs.w_ih.t()
    projected = projected.reshape(steps, batch, 4 * hidden)
    hidden_states = x.new_empty(steps + 1, batch, hidden)
    cells = torch.empty(steps + 1, batch, hidden, device=x.device, dtype=torch.float32)
    gates = x.new_empty(steps, batch, 4 * hidden)
    hidden_states[0] = inputs.h0
    cells[0] = inputs.c0
    net = x.new_empty(batch, 4 * hidden)
    h = hidden_states[0]
    w_hh_t = w_hh.t()
    split = products.kmajor_split(batch, 4 * hidden, hidden) if tf32 else 1
    with early_launches():  # ours (the cell kernel, tf32's product) start as the one before ends
        for t in range(steps):
            if tf32:  # in place: only this step reads projected[t]
                net = projected[t]
                products.kmajor_mm(h, w_hh, net, split, add=True)
            else:
                torch.addmm(projected[t], h, w_hh_t, out=net)
            forward_step(net, cells[t], gates[t], cells[t + 1], hidden_states[t + 1])
            h = hidden_states[t + 1]
    return ForwardState(hidden_states, cells, gates)
