"""One LSTM layer on the CuPy kernels, with the torch reference's semantics and signature.

    lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier, recorder=None) -> (output, h_n, c_n)

Forward: `sparsetrain.kernels.forward` (per step a cuBLAS GEMM and the fused cell kernel).
Backward: `sparsetrain.kernels.backward` runs the method's plan (dense, coarse, fine natively,
meprop the way its authors do). Each pass is replayed as one CUDA graph per layer and shape
(`sparsetrain.kernels.graphs`). Methods or shapes the kernels do not take fall back to the
torch reference (`sparsetrain.nn.reference`) for the whole layer.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import forward as forward_pass
from sparsetrain.kernels import graphs
from sparsetrain.nn import reference
from sparsetrain.sparsify import Sparsifier, build


def unsupported_reason(x: torch.Tensor, w_hh: torch.Tensor, sparsifier: Sparsifier) -> str | None:
    """Why the kernels cannot run this layer (None when they can)."""
    if not x.is_cuda:
        return "input is not on a CUDA device"
    if x.dtype not in (torch.float32, torch.bfloat16):
        return f"dtype {x.dtype} (kernels take float32, bfloat16)"
    hidden, batch = w_hh.shape[1], x.shape[1]
    if hidden % 32:
        return f"hidden size {hidden} is not a multiple of 32"
    if x.shape[2] % 4:
        return f"input size {x.shape[2]} is not a multiple of 4"
    if batch % 64:
        return f"batch {batch} is not a multiple of 64"
    return plans.plan_problem(sparsifier, batch, 4 * hidden)


class CupyLSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier):
        inputs = forward_pass.ForwardInputs(
            x=x.contiguous(), h0=h0.contiguous(), c0=c0.contiguous(), w_ih=w_ih.contiguous(),
            w_hh=w_hh.contiguous(), bias=None if b_ih is None else b_ih + b_hh)
        output, handoff = graphs.forward(inputs, (w_ih, w_hh))
        cells = handoff.tensors()["cells"]
        ctx.sparsifier = sparsifier
        ctx.has_bias = b_ih is not None
        # what the backward reads reaches it through the handoff, not saved copies (x, h0 and
        # the weights are saved all the same: autograd then refuses a backward after they were
        # changed in place); the saved sentinel says when no backward can read them any more
        ctx.handoff = handoff
        sentinel = torch.empty(0)
        handoff.needed_while(sentinel)
        # Unused outputs (h_n, c_n mostly) then come as None, not as freshly filled zeros:
        # two fills cost ~0.3 ms of host time per backward on the device seen.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, w_ih, w_hh, sentinel)
        return output, output[-1].clone(), cells[-1].to(x.dtype, copy=True)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_output, d_h_last, d_c_last):
        x = ctx.saved_tensors[0]
        handed = ctx.handoff.tensors()
        state = plans.LayerState(
            **handed,
            d_output=(d_output.contiguous() if d_output is not None
                      else torch.zeros_like(handed["hidden"][1:])),
            d_h_last=d_h_last, d_c_last=d_c_last)
        grads = graphs.run(ctx.sparsifier, state, ctx.handoff)
        d_x = grads.d_x.reshape(x.shape) if ctx.needs_input_grad[0] else None
        d_bias = grads.d_bias if ctx.has_bias else None
        return (d_x, grads.d_h0, grads.d_c0, grads.d_w_ih, grads.d_w_hh, d_bias, d_bias, None)


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier, recorder=None):
    """(T, N, D) input -> (output (T, N, H), h_n, c_n); sparse backward on the kernels.

    With a dnet `recorder` (sparsetrain.train.dnet_histograms) the layer runs on the torch
    reference, which hands the recorder each backward's dnet; the kernels never form it whole."""
    sparsifier = sparsifier if sparsifier is not None else build(None)
    if recorder is not None or unsupported_reason(x, w_hh, sparsifier) is not None:
        return reference.lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier, recorder)
    return CupyLSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, sparsifier)
