"""CUDA kernels (CuPy RawModule) for the sparse LSTM backward; `.cu` sources beside launchers.

Importing this package needs neither CuPy nor a GPU; launching a kernel needs both.
"""

from sparsetrain.kernels._loader import cupy_available

__all__ = ["cupy_available"]
