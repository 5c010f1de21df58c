"""Input checks every launcher runs before touching the GPU: a bad call raises, never corrupts."""

from __future__ import annotations

from typing import Sequence

import torch

from sparsetrain.errors import ConfigError

KERNEL_DTYPES = (torch.float32, torch.bfloat16)


def expect(tensor: torch.Tensor, name: str, dtype: torch.dtype,
           shape: Sequence[int] | None = None) -> None:
    """dtype, then shape, then contiguity; `launch` checks devices once all tensors passed."""
    if not isinstance(tensor, torch.Tensor):
        raise ConfigError(f"{name}: expected a tensor, got {type(tensor).__name__}")
    if tensor.dtype != dtype:
        raise ConfigError(f"{name}: expected dtype {dtype}, got {tensor.dtype}")
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise ConfigError(f"{name}: expected shape {tuple(shape)}, got {tuple(tensor.shape)}")
    if not tensor.is_contiguous():
        raise ConfigError(f"{name}: must be contiguous")


def expect_kernel_dtype(dtype: torch.dtype, name: str) -> None:
    if dtype not in KERNEL_DTYPES:
        raise ConfigError(f"{name}: the cupy kernels take float32 or bfloat16, got {dtype}")


def expect_rule(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def expect_cuda(tensors: Sequence[torch.Tensor], entry: str) -> None:
    for tensor in tensors:
        if tensor.device.type != "cuda":
            raise ConfigError(f"{entry}: every tensor must be on a CUDA device, "
                              f"got one on {tensor.device}")
