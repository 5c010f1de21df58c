"""Launchers refuse bad inputs before any launch: these run on the CPU, without CuPy."""

import pytest
import torch

from sparsetrain import ConfigError
from sparsetrain.kernels import products
from sparsetrain.kernels.lstm_layer import unsupported_reason
from sparsetrain.kernels.pointwise import (backward_step, backward_step_coarse, forward_step,
                                           fused_coarse_fits)
from sparsetrain.kernels.select import coarse_select
from sparsetrain.sparsify import build


def forward_args(n=32, hidden=32, dtype=torch.float32):
    return (torch.zeros(n, 4 * hidden, dtype=dtype), torch.zeros(n, hidden),
            torch.zeros(n, 4 * hidden, dtype=dtype), torch.zeros(n, hidden),
            torch.zeros(n, hidden, dtype=dtype))


def test_forward_step_refuses_float16():
    with pytest.raises(ConfigError, match="float32 or bfloat16"):
        forward_step(*forward_args(dtype=torch.float16))


def test_forward_step_refuses_a_cell_state_of_the_wrong_shape():
    net, _, gates, c, h = forward_args()
    with pytest.raises(ConfigError, match="c_prev: expected shape"):
        forward_step(net, torch.zeros(32, 31), gates, c, h)


def test_forward_step_refuses_a_bfloat16_cell_state():
    net, c_prev, gates, c, h = forward_args(dtype=torch.bfloat16)
    with pytest.raises(ConfigError, match="c_prev: expected dtype torch.float32"):
        forward_step(net, c_prev.bfloat16(), gates, c, h)


def test_forward_step_refuses_cpu_tensors():
    with pytest.raises(ConfigError, match="CUDA device"):
        forward_step(*forward_args())


def test_forward_step_refuses_a_hidden_size_not_a_multiple_of_32():
    with pytest.raises(ConfigError, match="multiple of 128"):
        forward_step(*forward_args(hidden=20))


def test_backward_step_refuses_norms_of_the_wrong_layout():
    n, hidden = 64, 32
    f32 = lambda *s: torch.zeros(*s)  # noqa: E731
    with pytest.raises(ConfigError, match="norms: expected shape"):
        backward_step(f32(n, hidden), f32(n, hidden), f32(n, hidden), f32(n, 4 * hidden),
                      f32(n, hidden), f32(n, hidden), f32(n, 4 * hidden),
                      norms=f32(2, 4 * hidden // 4 + 1), group=4, rows_per_chunk=32,
                      layout="coarse")


def test_fused_coarse_step_refuses_a_hidden_size_its_blocks_cannot_split():
    n, hidden, P, R = 64, 96, 4, 16  # a block owns 64 units: whole regions of 16 slices
    f32 = lambda *s: torch.zeros(*s)  # noqa: E731
    with pytest.raises(ConfigError, match="multiple of 64"):
        backward_step_coarse(f32(n, hidden), f32(n, hidden), f32(n, hidden), f32(n, 4 * hidden),
                             f32(n, hidden), f32(n, hidden), f32(n, 4 * hidden), P, R, 8,
                             torch.zeros(6, 8, dtype=torch.int32),
                             torch.zeros(96, dtype=torch.int32), f32(6, 2))


def test_fused_coarse_step_refuses_a_bfloat16_cell_gradient():
    n, hidden = 64, 32
    f32 = lambda *s: torch.zeros(*s)  # noqa: E731
    with pytest.raises(ConfigError, match="dc: expected dtype torch.float32"):
        backward_step_coarse(f32(n, hidden), f32(n, hidden), f32(n, hidden).bfloat16(),
                             f32(n, 4 * hidden), f32(n, hidden), f32(n, hidden),
                             f32(n, 4 * hidden), 4, 8, 4, torch.zeros(4, 4, dtype=torch.int32),
                             torch.zeros(32, dtype=torch.int32), f32(4, 2))


def test_fused_coarse_step_fits_only_rows_its_shared_memory_holds():
    assert fused_coarse_fits(2048, 2048, 4, 8, torch.float32)  # a block holds 256 rows
    assert not fused_coarse_fits(4096, 2048, 4, 8, torch.float32)
    assert not fused_coarse_fits(64, 512, 4, 64, torch.bfloat16)  # 256-unit regions
    assert fused_coarse_fits(64, 512, 4, 16, torch.bfloat16)  # 64-unit regions


def _select_outputs(regions, keep, slices, n, kc):
    return (torch.zeros(regions, keep, dtype=torch.int32), torch.zeros(slices, dtype=torch.int32),
            torch.zeros(n, kc), torch.zeros(regions, 2))


def test_select_gather_mm_refuses_S_not_below_R():
    with pytest.raises(ConfigError, match="S < R"):
        products.select_gather_mm(torch.zeros(64, 128), torch.zeros(1, 32), torch.zeros(128, 8),
                                  4, 8, 8, torch.zeros(64, 8), 1, *_select_outputs(4, 0, 32, 64, 0))


def test_select_gather_mm_refuses_a_region_size_a_warp_cannot_split():
    with pytest.raises(ConfigError, match="R one of 2, 4, 8, 16, 32"):
        products.select_gather_mm(torch.zeros(64, 96), torch.zeros(1, 24), torch.zeros(96, 8),
                                  4, 6, 2, torch.zeros(64, 8), 1, *_select_outputs(4, 4, 24, 64, 64))


def test_coarse_with_such_a_region_size_has_no_kernel_plan():
    from sparsetrain.kernels.backward import plan_problem
    assert "R=6" in plan_problem(build({"name": "coarse", "R": 6, "S": 2}), 64, 96)


def test_select_gather_mm_refuses_b_without_a_row_per_dnet_column():
    with pytest.raises(ConfigError, match="b: expected shape"):
        products.select_gather_mm(torch.zeros(64, 128), torch.zeros(8, 32), torch.zeros(64, 8),
                                  4, 8, 4, torch.zeros(64, 8), 1,
                                  *_select_outputs(4, 4, 32, 64, 64))


def test_coarse_select_refuses_a_step_too_large_for_its_32_bit_offsets():
    dnet = torch.empty(65536, 32768, device="meta", dtype=torch.bfloat16)
    with pytest.raises(ConfigError, match="under 2\\^31 elements"):
        coarse_select(torch.empty(8192, 8192, device="meta"), dnet, 4, 8, 4, None, None, None)


def test_gather_mm_refuses_an_int64_index():
    a, b = torch.zeros(64, 16), torch.zeros(64, 8)
    with pytest.raises(ConfigError, match="index: expected dtype torch.int32"):
        products.gather_mm(a, b, torch.zeros(1, 4, dtype=torch.int64), 4, 64, torch.zeros(64, 8))


def test_gather_mm_refuses_split_k_into_bfloat16():
    a, b = torch.zeros(64, 16, dtype=torch.bfloat16), torch.zeros(64, 8, dtype=torch.bfloat16)
    with pytest.raises(ConfigError, match="split_k needs float32"):
        products.gather_mm(a, b, torch.zeros(1, 4, dtype=torch.int32), 4, 64,
                           torch.zeros(64, 8, dtype=torch.bfloat16), split_k=2)


def test_keep_all_wgrad_writes_bfloat16_only_where_no_blocks_split_the_steps():
    # xl's dW: 512 blocks of 128 x 256, more than one wave; nmt's: 64 of 128 x 128, split
    assert products.keep_all_out_dtype(torch.bfloat16, 8192, 2048, 35) == torch.bfloat16
    assert products.keep_all_out_dtype(torch.bfloat16, 2048, 512, 50) == torch.float32
    assert products.keep_all_out_dtype(torch.float32, 8192, 2048, 35) == torch.float32


def test_keep_all_wgrad_refuses_bfloat16_out_where_blocks_split_the_steps():
    values, x = (torch.zeros(12 * 64, width, dtype=torch.bfloat16) for width in (256, 128))
    with pytest.raises(ConfigError, match="out must be float32"):
        products.keep_all_wgrad(values, x, 12, torch.zeros(256, 128, dtype=torch.bfloat16))


def test_region_wgrad_refuses_regions_too_large_for_shared_memory():
    with pytest.raises(ConfigError, match="exceed the shared-memory"):
        products.region_wgrad(torch.zeros(64, 128), torch.zeros(64, 8),
                              torch.zeros(2, 32, dtype=torch.int32),
                              torch.zeros(2, 128, dtype=torch.int32), 4, 128, 96, 2,
                              torch.zeros(512, 8))


def test_layer_falls_back_for_cpu_input_and_unplanned_methods():
    x, w_hh = torch.zeros(3, 32, 8), torch.zeros(128, 32)
    assert "CUDA" in unsupported_reason(x, w_hh, build({"name": "dense"}))
    meprop_dh = build({"name": "meprop", "keep": 0.5, "target": "dh"})
    from sparsetrain.kernels.backward import plan_problem
    assert plan_problem(meprop_dh, 32, 128) is not None
    assert plan_problem(build({"name": "coarse", "R": 8, "S": 4}), 64, 128) is None
