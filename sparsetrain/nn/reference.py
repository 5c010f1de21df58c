"""One LSTM layer in plain torch ops, with a hand-written backward that sparsifies dnet_t.

Forward (gate order i, f, g, o as torch.nn.LSTM):
    net_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
    c_t = f*c_{t-1} + i*g ;  h_t = o*tanh(c_t)
The input projection of all T steps is one GEMM; only h_{t-1} W_hh^T runs per step.

Backward, t = T-1 .. 0, with s_t = sparsify(dnet_t) feeding every product:
    dh_{t-1} = s_t W_hh  (per step)
    dx = s W_ih, dW_ih = s^T x, dW_hh = s^T h_prev, db = sum s   (once, over all T*N rows)
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from sparsetrain.sparsify import Sparsifier


class LSTMLayerFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier):
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        projected = (x.reshape(steps * batch, -1) @ w_ih.t()).reshape(steps, batch, 4 * hidden)
        if b_ih is not None:
            projected += b_ih + b_hh
        output = x.new_empty(steps, batch, hidden)
        cells = x.new_empty(steps + 1, batch, hidden)
        gates = x.new_empty(steps, batch, 4 * hidden)
        cells[0] = c0
        h = h0
        for t in range(steps):
            net = torch.addmm(projected[t], h, w_hh.t())
            gate = gates[t]
            torch.sigmoid(net[:, : 2 * hidden], out=gate[:, : 2 * hidden])
            torch.tanh(net[:, 2 * hidden: 3 * hidden], out=gate[:, 2 * hidden: 3 * hidden])
            torch.sigmoid(net[:, 3 * hidden:], out=gate[:, 3 * hidden:])
            i, f, g, o = gate.chunk(4, dim=1)
            torch.addcmul(i * g, f, cells[t], out=cells[t + 1])
            h = torch.mul(o, torch.tanh(cells[t + 1]), out=output[t])
        ctx.sparsifier = sparsifier
        ctx.has_bias = b_ih is not None
        ctx.save_for_backward(x, h0, w_ih, w_hh, output, cells, gates)
        return output, output[-1].clone(), cells[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_output, d_h_last, d_c_last):
        x, h0, w_ih, w_hh, output, cells, gates = ctx.saved_tensors
        sparsifier: Sparsifier = ctx.sparsifier
        steps, batch, hidden = output.shape
        kept = x.new_empty(steps, batch, 4 * hidden)  # s_t for every step
        d_h = d_h_last if d_h_last is not None else x.new_zeros(batch, hidden)
        d_c = d_c_last.clone() if d_c_last is not None else x.new_zeros(batch, hidden)
        on_dh = sparsifier.acts_on == "dh"
        for t in range(steps - 1, -1, -1):
            if d_output is not None:
                d_h = d_h + d_output[t]
            if on_dh:
                d_h = sparsifier(d_h)
            i, f, g, o = gates[t].chunk(4, dim=1)
            tanh_c = torch.tanh(cells[t + 1])
            d_c += d_h * o * (1 - tanh_c * tanh_c)
            dnet = kept[t]
            di, df, dg, do = dnet.chunk(4, dim=1)
            torch.mul(d_c * g, i * (1 - i), out=di)
            torch.mul(d_c * cells[t], f * (1 - f), out=df)
            torch.mul(d_c * i, 1 - g * g, out=dg)
            torch.mul(d_h * tanh_c, o * (1 - o), out=do)
            d_c *= f
            if not on_dh:
                s = sparsifier(dnet)
                if s is not dnet:
                    dnet.copy_(s)
            d_h = dnet @ w_hh
        rows = kept.reshape(steps * batch, 4 * hidden)
        d_x = (rows @ w_ih).reshape(x.shape) if ctx.needs_input_grad[0] else None
        d_w_ih = rows.t() @ x.reshape(steps * batch, -1)
        h_prev = torch.cat([h0.unsqueeze(0), output[:-1]]).reshape(steps * batch, hidden)
        d_w_hh = rows.t() @ h_prev
        d_bias = rows.sum(dim=0) if ctx.has_bias else None
        return d_x, d_h, d_c, d_w_ih, d_w_hh, d_bias, d_bias, None


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier):
    """(T, N, D) input -> (output (T, N, H), h_n, c_n), differentiable, sparse backward."""
    return LSTMLayerFunction.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier)
