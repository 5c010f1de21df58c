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
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier, recorder=None):
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
            gate = gates[t]
            # sigmoid over all four blocks, then tanh over g: two launches instead of three
            net = torch.addmm(projected[t], h, w_hh.t())
            torch.sigmoid(net, out=gate)
            torch.tanh(net[:, 2 * hidden: 3 * hidden], out=gate[:, 2 * hidden: 3 * hidden])
            i, f, g, o = gate.chunk(4, dim=1)
            torch.addcmul(i * g, f, cells[t], out=cells[t + 1])
            h = torch.mul(o, torch.tanh(cells[t + 1]), out=output[t])
        ctx.sparsifier = sparsifier
        ctx.recorder = recorder
        ctx.has_bias = b_ih is not None
        ctx.save_for_backward(x, h0, w_ih, w_hh, output, gates, cells)
        return output, output[-1].clone(), cells[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_output, d_h_last, d_c_last):
        x, h0, w_ih, w_hh, output, gates, cells = ctx.saved_tensors
        # Evaluation never gets here, so the factors are built only for a backward pass.
        dnet_per_dc, d_o_per_dh, dc_per_dh, forget = _backward_factors(gates, cells)
        sparsifier: Sparsifier = ctx.sparsifier
        steps, batch, hidden = output.shape
        kept = x.new_empty(steps, batch, 4 * hidden)  # s_t for every step
        d_h = d_h_last if d_h_last is not None else x.new_zeros(batch, hidden)
        d_c = d_c_last.clone() if d_c_last is not None else x.new_zeros(batch, hidden)
        on_dh = sparsifier.acts_on == "dh"
        # dnet before the method sparsifies it (from the sparsified dh for methods acting on
        # dh), kept only on a recording step (record.dnet_steps)
        seen = x.new_empty(steps, batch, 4 * hidden) if ctx.recorder is not None else None
        for t in range(steps - 1, -1, -1):
            if d_output is not None:
                d_h = d_h + d_output[t]
            if on_dh:
                d_h = sparsifier(d_h)
            d_c.addcmul_(d_h, dc_per_dh[t])
            dnet = kept[t]
            # [di | df | dg] = dc * factor, do = dh * factor: one launch each
            torch.mul(d_c.unsqueeze(1), dnet_per_dc[t],
                      out=dnet.view(batch, 4, hidden)[:, :3])
            torch.mul(d_h, d_o_per_dh[t], out=dnet[:, 3 * hidden:])
            d_c.mul_(forget[t])
            if seen is not None:
                seen[t] = dnet
            if not on_dh:
                s = sparsifier(dnet)
                if s is not dnet:
                    dnet.copy_(s)
            d_h = dnet @ w_hh
        if seen is not None:
            ctx.recorder.add(seen)
        rows = kept.reshape(steps * batch, 4 * hidden)
        d_x = (rows @ w_ih).reshape(x.shape) if ctx.needs_input_grad[0] else None
        d_w_ih = rows.t() @ x.reshape(steps * batch, -1)
        h_prev = torch.cat([h0.unsqueeze(0), output[:-1]]).reshape(steps * batch, hidden)
        d_w_hh = rows.t() @ h_prev
        d_bias = rows.sum(dim=0) if ctx.has_bias else None
        return d_x, d_h, d_c, d_w_ih, d_w_hh, d_bias, d_bias, None, None


def _backward_factors(gates, cells):
    """The local derivatives the backward needs, for all T steps in a few batched launches.

    dnet_per_dc (T, N, 3, H): [g*i(1-i), c_{t-1}*f(1-f), i*(1-g^2)]  (di, df, dg per unit dc)
    d_o_per_dh  (T, N, H):    tanh(c_t)*o(1-o)                        (do per unit dh)
    dc_per_dh   (T, N, H):    o*(1-tanh^2 c_t)                        (dc per unit dh)
    forget      (T, N, H):    f                                       (dc_{t-1} per unit dc)
    """
    i, f, g, o = gates.chunk(4, dim=2)
    tanh_c = torch.tanh(cells[1:])
    dnet_per_dc = torch.stack([g * i * (1 - i), cells[:-1] * f * (1 - f), i * (1 - g * g)], 2)
    return dnet_per_dc, tanh_c * o * (1 - o), o * (1 - tanh_c * tanh_c), f.contiguous()


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier, recorder=None):
    """(T, N, D) input -> (output (T, N, H), h_n, c_n), differentiable, sparse backward.

    `recorder` (rarely set: sparsetrain.train.dnet_histograms) gets the layer's dnet (T, N, 4H)
    before the method sparsifies it, once per backward."""
    return LSTMLayerFunction.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier, recorder)
