"""Neural-network layers with a sparsified backward pass."""

from sparsetrain.nn.lstm import LSTM

__all__ = ["LSTM"]
