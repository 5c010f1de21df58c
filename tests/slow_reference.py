"""Independent, deliberately slow references for the tests: plain loops, no shared code."""

from __future__ import annotations

import torch


def _keep_largest(norms: list[float], count: int) -> set[int]:
    # Of equal norms the lower position wins: sort by (-norm, position).
    ranked = sorted(range(len(norms)), key=lambda position: (-norms[position], position))
    return set(ranked[:count])


def coarse(dnet: torch.Tensor, P: int, R: int, S: int) -> torch.Tensor:
    rows, width = dnet.shape
    out = torch.zeros_like(dnet)
    for start in range(0, width, P * R):
        norms = [float(dnet[:, start + k * P: start + (k + 1) * P].double().norm())
                 for k in range(R)]
        for k in _keep_largest(norms, R - S):
            columns = slice(start + k * P, start + (k + 1) * P)
            out[:, columns] = dnet[:, columns]
    return out


def fine(dnet: torch.Tensor, My: int, Mx: int, K: int) -> torch.Tensor:
    rows, width = dnet.shape
    out = torch.zeros_like(dnet)
    blocks = rows // My
    for start in range(0, width, Mx):
        columns = slice(start, start + Mx)
        norms = [float(dnet[b * My:(b + 1) * My, columns].double().norm()) for b in range(blocks)]
        for b in _keep_largest(norms, blocks - K):
            out[b * My:(b + 1) * My, columns] = dnet[b * My:(b + 1) * My, columns]
    return out


def meprop(values: torch.Tensor, keep: float) -> torch.Tensor:
    columns = values.shape[1]
    scores = [float(values[:, j].double().abs().sum()) for j in range(columns)]
    out = torch.zeros_like(values)
    for j in _keep_largest(scores, max(1, round(keep * columns))):
        out[:, j] = values[:, j]
    return out


def threshold(dnet: torch.Tensor, tau: float) -> torch.Tensor:
    out = dnet.clone()
    for index in range(dnet.numel()):
        if abs(float(dnet.view(-1)[index])) < tau:
            out.view(-1)[index] = 0
    return out


def lstm_with_hooks(x, h0, c0, weights, dnet_hook=None, dh_hook=None):
    """A step-by-step LSTM through autograd; hooks rewrite dnet_t or dh_t as they flow back.

    `weights` is a list of (w_ih, w_hh, b_ih, b_hh) per layer (biases may be None).
    """
    layer_input = x
    h_last, c_last = [], []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        h, c = h0[layer], c0[layer]
        outputs = []
        for t in range(layer_input.shape[0]):
            net = layer_input[t] @ w_ih.t() + h @ w_hh.t()
            if b_ih is not None:
                net = net + b_ih + b_hh
            if dnet_hook is not None:
                net.register_hook(dnet_hook)
            i, f, g, o = net.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if dh_hook is not None:
                h.register_hook(dh_hook)
            outputs.append(h)
        layer_input = torch.stack(outputs)
        h_last.append(h)
        c_last.append(c)
    return layer_input, torch.stack(h_last), torch.stack(c_last)
