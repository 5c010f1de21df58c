"""sparsetrain: sparsified backward propagation for LSTM training."""

from sparsetrain.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["ConfigError", "__version__"]
