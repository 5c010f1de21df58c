"""Tensor maps for the copy engine: what they refuse before asking the driver (CPU)."""

import pytest
import torch

from sparsetrain.kernels import _tensor_maps


def test_a_tensor_map_needs_a_contiguous_tensor():
    with pytest.raises(ValueError, match="contiguous"):
        _tensor_maps.tiled(torch.zeros(64, 64, dtype=torch.bfloat16).t(), (64, 64))


def test_a_tensor_map_needs_one_box_size_per_dimension():
    with pytest.raises(ValueError, match="box of 3 sizes"):
        _tensor_maps.tiled(torch.zeros(1, 64, 64, dtype=torch.bfloat16), (64, 64))


def test_a_box_row_may_not_pass_the_swizzle_span():
    with pytest.raises(ValueError, match="passes 128 bytes"):
        _tensor_maps.tiled(torch.zeros(64, 128, dtype=torch.bfloat16), (128, 64))
