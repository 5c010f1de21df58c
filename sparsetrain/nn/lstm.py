"""`sparsetrain.nn.LSTM`: torch.nn.LSTM's call and parameters, with a sparsified backward."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sparsetrain import sparsify
from sparsetrain.errors import ConfigError
from sparsetrain.nn import reference

BACKENDS = ("torch", "cupy", "auto")


def _cupy_layer() -> Callable[..., Any] | None:
    try:
        from sparsetrain.kernels.lstm_layer import lstm_layer
    except ImportError:
        return None
    return lstm_layer


class LSTM(nn.Module):
    """Seq-first multi-layer LSTM; a `torch.nn.LSTM` state dict loads into it and back.

    `sparsifier` (a method spec, a Sparsifier, or None for dense) acts on each layer's gate
    gradient; assigning `lstm.sparsifier` swaps it between training steps. Each layer keeps its
    own copy so `gradient_stats()` reports per layer.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, dropout: float = 0.0,
                 sparsifier: Mapping[str, Any] | sparsify.Sparsifier | None = None,
                 backend: str = "torch") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout: must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias, self.dropout = num_layers, bias, dropout
        self.backend = backend
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}",
                                    nn.Parameter(torch.empty(4 * hidden_size, width)))
            self.register_parameter(f"weight_hh_l{layer}",
                                    nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
            if bias:
                self.register_parameter(f"bias_ih_l{layer}",
                                        nn.Parameter(torch.empty(4 * hidden_size)))
                self.register_parameter(f"bias_hh_l{layer}",
                                        nn.Parameter(torch.empty(4 * hidden_size)))
        self.reset_parameters()
        self.sparsifier = sparsifier
        # Per layer, set by the trainer for a recording step only (record.dnet_steps): each
        # gets its layer's dnet; the step runs the torch reference backward on any backend.
        self.dnet_recorders: list[Any] | None = None
        # cuDNN's one-buffer copy of the weights for the no-grad forward, and the weights'
        # (address, version) it was made from: remade only after they change.
        self._fused_weights: list[torch.Tensor] = []
        self._fused_from: tuple = ()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    @property
    def sparsifier(self) -> sparsify.Sparsifier:
        return self._layer_sparsifiers[0]

    @sparsifier.setter
    def sparsifier(self, spec: Mapping[str, Any] | sparsify.Sparsifier | None) -> None:
        self._layer_sparsifiers = [sparsify.build(spec) for _ in range(self.num_layers)]

    def gradient_stats(self) -> list[dict[str, float]]:
        """Per layer: mean sparsity, kept energy and cosine since the last read; then reset."""
        return [layer.stats() for layer in self._layer_sparsifiers]

    def _layer_function(self, x: torch.Tensor) -> Callable[..., Any]:
        if self.backend == "torch":
            return reference.lstm_layer
        cupy_layer = _cupy_layer() if x.is_cuda else None
        if cupy_layer is not None:
            return cupy_layer
        if self.backend == "auto":
            return reference.lstm_layer
        raise ConfigError("backend: cupy needs a CUDA tensor and CuPy "
                          "(pip install -e '.[gpu]'); use backend torch or auto")

    def forward(self, x: torch.Tensor,
                hx: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"LSTM input must be (T, N, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        batch = x.shape[1]
        if hx is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            hx = (zeros, zeros)
        recorders = self.dnet_recorders
        if not torch.is_grad_enabled():
            return self._forward_without_backward(x, hx)
        layer_function = self._layer_function(x)
        h_last, c_last = [], []
        for layer in range(self.num_layers):
            suffix = f"_l{layer}"
            biases = ((getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix))
                      if self.bias else (None, None))
            x, h_n, c_n = layer_function(
                x, hx[0][layer], hx[1][layer],
                getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix),
                *biases, self._layer_sparsifiers[layer],
                recorder=recorders[layer] if recorders is not None else None)
            h_last.append(h_n)
            c_last.append(c_n)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, (torch.stack(h_last), torch.stack(c_last))

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, dropout={self.dropout}, sparsifier={self.sparsifier}, "
                f"backend={self.backend}")

    def _forward_without_backward(self, x: torch.Tensor,
                                  hx: tuple[torch.Tensor, torch.Tensor],
                                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation needs no saved gates and no sparsifier: the forward is plain LSTM math,
        which torch's fused LSTM (cuDNN on a GPU) does in one call instead of T steps."""
        output, h_n, c_n = torch._VF.lstm(
            x, (hx[0].contiguous(), hx[1].contiguous()), self._weights_for_fused(), self.bias,
            self.num_layers, self.dropout, self.training, False, False)
        return output, (h_n, c_n)

    def _weights_for_fused(self) -> list[torch.Tensor]:
        """The weights in torch.nn.LSTM's order. cuDNN wants them in one buffer and would
        otherwise copy them on every call (a beam search calls once per token), so on a GPU
        they are copied into one buffer here, again only after an update or a move."""
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if self.bias else 2]
        weights = [getattr(self, f"{kind}_l{layer}") for layer in range(self.num_layers)
                   for kind in kinds]
        if not (weights[0].is_cuda and torch.backends.cudnn.is_available()):
            return weights
        source = tuple((w.data_ptr(), w._version) for w in weights)
        if source != self._fused_from:
            fused = [w.detach().clone() for w in weights]
            torch._cudnn_rnn_flatten_weight(  # re-points `fused` into one buffer
                fused, len(kinds), self.input_size, torch.backends.cudnn.rnn.get_cudnn_mode("LSTM"),
                self.hidden_size, 0, self.num_layers, False, False)
            self._fused_weights, self._fused_from = fused, source
        return self._fused_weights
