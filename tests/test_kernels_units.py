"""Each CUDA kernel against an independent slow reference on random inputs (GPU only).

Outputs are poisoned with NaN first, so an element a kernel fails to write fails the test.
"""

import math

import pytest
import torch

pytest.importorskip("cupy")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from sparsetrain.kernels import products  # noqa: E402
from sparsetrain.kernels.pointwise import (backward_step, backward_step_coarse,  # noqa: E402
                                           forward_step)
from sparsetrain.kernels.select import (coarse_select, fine_select,  # noqa: E402
                                        step_summary, zero_dropped_slices)
from sparsetrain.kernels.transpose import transposed  # noqa: E402
from sparsetrain.sparsify import summarize  # noqa: E402

pytestmark = pytest.mark.gpu
DTYPES = [torch.float32, torch.bfloat16]
PRODUCT_TOLERANCE = {torch.float32: 3e-3, torch.bfloat16: 1e-2}  # tf32 / bf16 operands
POINTWISE_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


def relative_error(out, ref):
    out, ref = out.double(), ref.double()
    assert not torch.isnan(out).any(), "an output element was not written"
    return ((out - ref).norm() / ref.norm()).item()


def poisoned(*shape, dtype=torch.float32):
    return torch.full(shape, math.nan, device="cuda", dtype=dtype)


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, device="cuda").to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_step_matches_the_cell_equations(dtype):
    n, hidden = 64, 96
    net, c_prev = randn(n, 4 * hidden, dtype=dtype), randn(n, hidden)
    gates, c, h = poisoned(n, 4 * hidden, dtype=dtype), poisoned(n, hidden), poisoned(n, hidden, dtype=dtype)
    forward_step(net, c_prev, gates, c, h)
    z = net.double()
    i, f, g, o = z[:, :hidden].sigmoid(), z[:, hidden:2 * hidden].sigmoid(), \
        z[:, 2 * hidden:3 * hidden].tanh(), z[:, 3 * hidden:].sigmoid()
    c_ref = f * c_prev.double() + i * g
    assert relative_error(c, c_ref) < POINTWISE_TOLERANCE[dtype]
    assert relative_error(h, o * c_ref.tanh()) < POINTWISE_TOLERANCE[dtype]
    assert relative_error(gates, torch.cat([i, f, g, o], 1)) < POINTWISE_TOLERANCE[dtype]


def _backward_reference(dh_rec, grad_out, dc, gates, c, c_prev):
    hidden = c.shape[1]
    gates = gates.double()
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    dh = dh_rec.double() + grad_out.double()
    tc = c.double().tanh()
    dcv = dc.double() + dh * o * (1 - tc * tc)
    dnet = torch.cat([dcv * g * i * (1 - i), dcv * c_prev.double() * f * (1 - f),
                      dcv * i * (1 - g * g), dh * tc * o * (1 - o)], 1)
    return dnet, dcv * f


def _backward_inputs(n, hidden, dtype):
    return (randn(n, hidden), randn(n, hidden, dtype=dtype), randn(n, hidden),
            torch.rand(n, 4 * hidden, device="cuda").to(dtype), randn(n, hidden), randn(n, hidden))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [64, 96])  # 64: two units per thread; 96: one
def test_backward_step_gives_dnet_and_the_next_cell_gradient(dtype, hidden):
    n = 64
    dh_rec, grad_out, dc, gates, c, c_prev = _backward_inputs(n, hidden, dtype)
    dnet_ref, dc_ref = _backward_reference(dh_rec, grad_out, dc, gates, c, c_prev)
    dnet = poisoned(n, 4 * hidden, dtype=dtype)
    backward_step(dh_rec, grad_out, dc, gates, c, c_prev, dnet)
    assert relative_error(dnet, dnet_ref) < POINTWISE_TOLERANCE[dtype]
    assert relative_error(dc, dc_ref) < 1e-5


def test_backward_step_can_clear_the_recurrent_gradient_once_read():
    n, hidden = 64, 64
    dh_rec, grad_out, dc, gates, c, c_prev = _backward_inputs(n, hidden, torch.float32)
    dnet_ref, _ = _backward_reference(dh_rec, grad_out, dc, gates, c, c_prev)
    dnet = poisoned(n, 4 * hidden)
    backward_step(dh_rec, grad_out, dc, gates, c, c_prev, dnet, clear_dh_rec=True)
    assert relative_error(dnet, dnet_ref) < POINTWISE_TOLERANCE[torch.float32]
    assert torch.equal(dh_rec, torch.zeros_like(dh_rec))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout,group,rows", [("coarse", 4, 32), ("fine", 4, 8), ("coarse", 8, 16),
                                               ("fine", 1, 8), ("fine", 2, 8), ("coarse", 32, 32)])
@pytest.mark.parametrize("hidden", [64, 96])  # 64: two units per thread; 96: one
def test_backward_step_norms_cover_each_slice_and_row_chunk(dtype, layout, group, rows, hidden):
    n = 96
    inputs = _backward_inputs(n, hidden, dtype)
    dnet = poisoned(n, 4 * hidden, dtype=dtype)
    chunks = n // rows
    shape = (chunks, 4 * hidden // group) if layout == "coarse" else (4 * hidden // group, chunks)
    norms = poisoned(*shape)
    backward_step(*inputs, dnet, norms, group, rows, layout)
    stored = dnet.double()
    expected = torch.empty(chunks, 4 * hidden // group, dtype=torch.float64, device="cuda")
    for chunk in range(chunks):
        for col in range(4 * hidden // group):
            block = stored[chunk * rows:(chunk + 1) * rows, col * group:(col + 1) * group]
            expected[chunk, col] = block.square().sum()
    if layout == "fine":
        expected = expected.t()
    assert relative_error(norms, expected) < 1e-5


def _ranked_keep(norms, keep):
    """Positions of the `keep` largest (ties: lower position), ascending; a plain loop."""
    order = sorted(range(len(norms)), key=lambda q: (-norms[q], q))
    return sorted(order[:keep])


def _coarse_index(partial, P, R, keep):
    """(G, keep) kept global slices per region from the summed partial norms; plain loops."""
    totals = partial.double().sum(0).tolist()
    return [[g * R + q for q in _ranked_keep(totals[g * R:(g + 1) * R], keep)]
            for g in range(len(totals) // R)]


def _separated_step_inputs(n, hidden, dtype, P, R, keep):
    """Cell-step inputs whose slices in each region have norms a factor of 16 or more apart
    (a power of 4 per slice scales the unit's dh_rec, grad_out and dc, so all four gates of
    it), but for the first two slices of the first units: the same inputs and level, ranked
    keep - 1 and keep, so the tie decides which one region keeps."""
    dh_rec, grad_out, dc, gates, c, c_prev = _backward_inputs(n, hidden, dtype)
    for tensor in (dh_rec, grad_out, dc, c, c_prev):
        tensor[:, P:2 * P] = tensor[:, :P]
    for q in range(4):
        gates[:, q * hidden + P:q * hidden + 2 * P] = gates[:, q * hidden:q * hidden + P]
    levels = []
    for region in range(hidden // (P * R)):
        order = torch.randperm(R).tolist()
        if region == 0:  # slices 0 and 1 at ranks keep - 1 and keep, the others around them
            others = [r for r in order if r > 1]
            order = others[:keep - 1] + [0, 1] + others[keep - 1:]
        level = [0] * R
        for rank, r in enumerate(order):
            level[r] = R - rank
        if region == 0:
            level[1] = level[0]
        levels += level
    scale = (4.0 ** torch.tensor(levels, device="cuda")).repeat_interleave(P)
    scale = scale / scale.max()
    dh_rec, dc = dh_rec * scale, dc * scale
    grad_out = (grad_out.float() * scale).to(dtype)
    return dh_rec, grad_out, dc, gates, c, c_prev


@pytest.mark.parametrize("dtype", DTYPES)
# units a cluster owns: 32 (regions of 8 to 32 columns), 64 and 128
@pytest.mark.parametrize("P,R,S,hidden", [(4, 8, 4, 96), (4, 2, 1, 64), (8, 4, 1, 64),
                                          (16, 2, 1, 32), (4, 16, 6, 128), (32, 4, 2, 128)])
@pytest.mark.parametrize("n", [64, 200])  # 200: rows shared unevenly in the cluster
def test_fused_coarse_step_keeps_the_largest_slices_over_all_rows(dtype, P, R, S, hidden, n):
    keep, width = R - S, 4 * hidden
    regions = width // (P * R)
    inputs = _separated_step_inputs(n, hidden, dtype, P, R, keep)
    dnet_ref, dc_ref = _backward_reference(*inputs)
    stored = dnet_ref.to(dtype).double()
    dh_rec, dc = inputs[0], inputs[2]
    dnet = poisoned(n, width, dtype=dtype)
    index = torch.full((regions, keep), -7, dtype=torch.int32, device="cuda")
    slot = torch.full((width // P,), -7, dtype=torch.int32, device="cuda")
    energy = poisoned(regions, 2)
    backward_step_coarse(*inputs, dnet, P, R, S, index, slot, energy)

    norms = [stored[:, k * P:(k + 1) * P].square().sum().item() for k in range(width // P)]
    for g in range(regions):
        region = [g * R + q for q in _ranked_keep(norms[g * R:(g + 1) * R], keep)]
        assert index[g].tolist() == region
        for slice_number in range(g * R, (g + 1) * R):
            columns = slice(slice_number * P, (slice_number + 1) * P)
            if slice_number in region:
                assert slot[slice_number].item() == g * keep + region.index(slice_number)
                assert relative_error(dnet[:, columns], stored[:, columns]) < 1e-2
            else:
                assert slot[slice_number].item() == -1
                assert not dnet[:, columns].any()
        assert energy[g, 0].item() == pytest.approx(sum(norms[k] for k in region), rel=1e-3)
        assert energy[g, 1].item() == pytest.approx(sum(norms[g * R:(g + 1) * R]), rel=1e-3)
    assert relative_error(dc, dc_ref) < 1e-5
    assert torch.equal(dh_rec, torch.zeros_like(dh_rec))


def test_fused_coarse_step_keeps_the_lower_of_two_tied_slices():
    P, R, S, n, hidden = 4, 8, 4, 64, 32
    dnet = poisoned(n, 4 * hidden)
    index = torch.empty(4, R - S, dtype=torch.int32, device="cuda")
    slot = torch.empty(4 * hidden // P, dtype=torch.int32, device="cuda")
    inputs = _separated_step_inputs(n, hidden, torch.float32, P, R, R - S)
    backward_step_coarse(*inputs, dnet, P, R, S, index, slot, poisoned(4, 2))
    assert not torch.isnan(dnet).any()
    for g in range(4):  # each gate's region of the first units holds the tied pair
        assert slot[g * R].item() >= 0 and slot[g * R + 1].item() == -1


# (N, 4H): 8 slices a selection block; a last block of fewer slices; 300 row blocks, so that
# only 3 slices fit a block's shared arrays
FINE_SHAPES = [(64, 128), (64, 136), (2400, 40)]


def _fine_step(dtype, n, width, My, Mx, K, with_values=True):
    """fine_select on random inputs with a tie; its outputs, poisoned first, and dnet before."""
    blocks, slices = n // My, width // Mx
    dnet = randn(n, width, dtype=dtype)
    before = dnet.clone()
    norms = torch.rand(slices, blocks, device="cuda")
    norms[0, 2] = norms[0, 4]
    index = torch.full((slices, blocks - K), -7, dtype=torch.int32, device="cuda")
    values = poisoned(slices, blocks - K, My, Mx, dtype=dtype) if with_values else None
    energy = poisoned(slices, 2)
    fine_select(norms, dnet, My, Mx, K, index, values, energy)
    return before, dnet, norms, index, values, energy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("Mx", [4, 2])  # 4: moved as vectors, 2: one element at a time
@pytest.mark.parametrize("n,width", FINE_SHAPES)
def test_fine_select_keeps_the_largest_blocks_of_each_slice(dtype, Mx, n, width):
    My, K = 8, 3
    before, _, norms, index, values, energy = _fine_step(dtype, n, width, My, Mx, K)
    blocks = n // My
    for c in range(width // Mx):
        kept = _ranked_keep(norms[c].tolist(), blocks - K)
        assert index[c].tolist() == kept
        for pos, b in enumerate(kept):
            assert torch.equal(values[c, pos], before[b * My:(b + 1) * My, c * Mx:(c + 1) * Mx])
        total = norms[c].double()
        assert energy[c, 0].item() == pytest.approx(total[kept].sum().item(), rel=1e-5)
        assert energy[c, 1].item() == pytest.approx(total.sum().item(), rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,width", FINE_SHAPES)
def test_fine_select_without_the_compact_form_selects_and_zeroes_alike(dtype, n, width):
    My, Mx, K = 8, 4, 3
    torch.manual_seed(5)
    _, dnet, _, index, _, energy = _fine_step(dtype, n, width, My, Mx, K)
    torch.manual_seed(5)
    _, dnet_alone, _, index_alone, _, energy_alone = _fine_step(dtype, n, width, My, Mx, K,
                                                                 with_values=False)
    assert torch.equal(dnet_alone, dnet)
    assert torch.equal(index_alone, index)
    assert torch.equal(energy_alone, energy)


def _gathered_rows(index_row, P):
    return [int(s) * P + p for s in index_row.tolist() for p in range(P)]


@pytest.mark.parametrize("a_dtype,out_dtype", [(torch.float32, torch.float32),
                                               (torch.bfloat16, torch.float32),
                                               (torch.bfloat16, torch.bfloat16)])
@pytest.mark.parametrize("split_k", [1, 3])
# 12: a split of Kc starts inside a slice (and the copy engine's boxes do not take it); 16: a
# box of 16 rows a slice
@pytest.mark.parametrize("P", [4, 12, 16])
@pytest.mark.parametrize("rows_per_group", [64, 128])  # 128: the 128-row tilings
@pytest.mark.parametrize("kernels", ["wgmma cp.async", "wgmma tma", "wgmma tma 128x256",
                                     "wgmma tma step", "mma"])
def test_gather_mm_multiplies_by_the_indexed_weight_rows(a_dtype, out_dtype, split_k, P,
                                                         rows_per_group, kernels, monkeypatch):
    if split_k > 1 and out_dtype != torch.float32:
        pytest.skip("split-K adds in float32 only")
    monkeypatch.setattr(products, "USE_WGMMA", kernels != "mma")
    monkeypatch.setattr(products, "USE_TMA", "tma" in kernels)
    # however few the blocks (the step entry: none of the batched entries) and narrow the slices
    monkeypatch.setattr(products, "TMA_GATHER_LEAST_BLOCKS", 10**9 if "step" in kernels else 0)
    monkeypatch.setattr(products, "TMA_GATHER_SLICE", 1)
    monkeypatch.setattr(products, "TMA_GATHER_WIDE", kernels.endswith("256"))
    groups, kept_slices, features = 3, 40, 328
    a = randn(groups * rows_per_group, kept_slices * P, dtype=a_dtype)
    b = randn(1024, features, dtype=a_dtype)
    index = torch.stack([torch.randperm(1024 // P, device="cuda")[:kept_slices].sort().values
                         for _ in range(groups)]).int()
    shape = (groups * rows_per_group, features)
    out = (torch.zeros(*shape, dtype=out_dtype, device="cuda") if split_k > 1
           else poisoned(*shape, dtype=out_dtype))
    products.gather_mm(a, b, index, P, rows_per_group, out, split_k)
    expected = torch.cat([
        a[g * rows_per_group:(g + 1) * rows_per_group].double()
        @ b.double()[_gathered_rows(index[g], P)] for g in range(groups)])
    assert relative_error(out, expected) < PRODUCT_TOLERANCE[a_dtype]


def _select_step(dtype, P, R, S, n, split_k, features=200, chunks=3):
    """select_gather_mm on random inputs with a tie; its outputs, poisoned first."""
    width = 48 * P * R  # 48 regions
    regions, keep = width // (P * R), R - S
    dnet = randn(n, width, dtype=dtype)
    b = randn(width, features, dtype=dtype)
    # Multiples of 2^-10: the kernel's float32 sums are exact, so no near-tie can rank
    # differently from the float64 reference (one did: R = 32, slot 259 for 258).
    partial = (torch.rand(chunks, width // P, device="cuda") * 1024).floor() / 1024
    partial[:, 5] = partial[:, 6]  # a tie: the lower slice must win
    out = torch.zeros(n, features, device="cuda") if split_k > 1 else poisoned(n, features)
    index = torch.full((regions, keep), -7, dtype=torch.int32, device="cuda")
    slot = torch.full((width // P,), -7, dtype=torch.int32, device="cuda")
    values = poisoned(n, regions * keep * P, dtype=dtype)
    energy = poisoned(regions, 2)
    products.select_gather_mm(dnet, partial, b, P, R, S, out, split_k, index, slot, values,
                              energy)
    return dnet, b, partial, out, index, slot, values, energy


def select_problems(test):
    """Both dtypes and kernel families; P 4 (bf16 slices of half a chunk), 8 and 16; R from 2
    to 32 (regions decided in warp lanes); with and without split-K; 64 and 128 rows (the
    128-row tilings)."""
    for name, cases in [("dtype", DTYPES),
                        ("P,R,S", [(4, 8, 4), (8, 8, 3), (16, 4, 1), (8, 2, 1), (4, 32, 20)]),
                        ("split_k", [1, 3]), ("n", [64, 128])]:
        test = pytest.mark.parametrize(name, cases)(test)
    return pytest.mark.parametrize("wgmma", [True, False], ids=["wgmma", "mma"])(test)


@select_problems
def test_select_gather_mm_multiplies_by_the_largest_slices_of_each_region(
        dtype, P, R, S, split_k, n, wgmma, monkeypatch):
    monkeypatch.setattr(products, "USE_WGMMA", wgmma)
    dnet, b, partial, out, index, *_ = _select_step(dtype, P, R, S, n, split_k)
    kept = _coarse_index(partial, P, R, R - S)
    assert index.tolist() == kept
    columns = [s * P + p for region in kept for s in region for p in range(P)]
    expected = dnet.double()[:, columns] @ b.double()[columns]
    assert relative_error(out, expected) < PRODUCT_TOLERANCE[dtype]


@select_problems
def test_select_gather_mm_writes_the_compact_form_slots_and_energies(
        dtype, P, R, S, split_k, n, wgmma, monkeypatch):
    monkeypatch.setattr(products, "USE_WGMMA", wgmma)
    dnet, _, partial, _, _, slot, values, energy = _select_step(dtype, P, R, S, n, split_k)
    keep = R - S
    totals = partial.double().sum(0).tolist()
    for g, kept in enumerate(_coarse_index(partial, P, R, keep)):
        for pos, slice_number in enumerate(kept):
            assert slot[slice_number].item() == g * keep + pos
            compact = slice(g * keep * P + pos * P, g * keep * P + (pos + 1) * P)
            assert torch.equal(values[:, compact], dnet[:, slice_number * P:(slice_number + 1) * P])
        dropped = set(range(g * R, (g + 1) * R)) - set(kept)
        assert all(slot[d].item() == -1 for d in dropped)
        assert energy[g, 0].item() == pytest.approx(sum(totals[k] for k in kept), rel=1e-5)
        assert energy[g, 1].item() == pytest.approx(sum(totals[g * R:(g + 1) * R]), rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("P,R,S", [(4, 8, 4), (8, 8, 3), (16, 4, 1), (4, 32, 20)])
@pytest.mark.parametrize("n", [64, 200])  # 200: rows shared unevenly between the blocks
def test_coarse_select_keeps_the_largest_slices_and_zeroes_the_others(dtype, P, R, S, n):
    width, chunks, keep = 48 * P * R, 3, R - S
    regions = width // (P * R)
    dnet = randn(n, width, dtype=dtype)
    original = dnet.clone()
    partial = (torch.rand(chunks, width // P, device="cuda") * 1024).floor() / 1024  # exact sums
    partial[:, 5] = partial[:, 6]  # a tie: the lower slice must win
    index = torch.full((regions, keep), -7, dtype=torch.int32, device="cuda")
    slot = torch.full((width // P,), -7, dtype=torch.int32, device="cuda")
    energy = poisoned(regions, 2)
    coarse_select(partial, dnet, P, R, S, index, slot, energy)
    kept = _coarse_index(partial, P, R, keep)
    assert index.tolist() == kept
    totals = partial.double().sum(0).tolist()
    for g, region in enumerate(kept):
        for pos, slice_number in enumerate(region):
            assert slot[slice_number].item() == g * keep + pos
        for slice_number in range(g * R, (g + 1) * R):
            columns = slice(slice_number * P, (slice_number + 1) * P)
            if slice_number in region:
                assert torch.equal(dnet[:, columns], original[:, columns])
            else:
                assert slot[slice_number].item() == -1
                assert not dnet[:, columns].any()
        assert energy[g, 0].item() == pytest.approx(sum(totals[k] for k in region), rel=1e-5)
        assert energy[g, 1].item() == pytest.approx(sum(totals[g * R:(g + 1) * R]), rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("P,R,S", [(4, 8, 4), (8, 8, 3), (16, 4, 1), (4, 32, 20), (4, 2, 1)])
@pytest.mark.parametrize("n", [64, 200])  # 200: rows shared unevenly between the blocks
def test_coarse_select_copies_the_kept_slices_into_the_compact_form(dtype, P, R, S, n):
    width, keep = 48 * P * R, R - S
    dnet = randn(n, width, dtype=dtype)
    original = dnet.clone()
    partial = torch.rand(3, width // P, device="cuda")
    regions = width // (P * R)
    index = torch.empty((regions, keep), dtype=torch.int32, device="cuda")
    slot = torch.empty((width // P,), dtype=torch.int32, device="cuda")
    values = poisoned(n, regions * keep * P, dtype=dtype)
    coarse_select(partial, dnet, P, R, S, index, slot, poisoned(regions, 2), values)
    kept = [s for region in _coarse_index(partial, P, R, keep) for s in region]
    expected = torch.cat([original[:, s * P:(s + 1) * P] for s in kept], 1)
    assert torch.equal(values, expected)
    zeroed = torch.zeros_like(original)
    for s in kept:
        zeroed[:, s * P:(s + 1) * P] = original[:, s * P:(s + 1) * P]
    assert torch.equal(dnet, zeroed)


@pytest.mark.parametrize("dtype", DTYPES)
# (8, 0): every slice kept; (8, 2): a small shared accumulator
@pytest.mark.parametrize("R,S", [(8, 4), (8, 0), (8, 2), (6, 2), (4, 3)])
@pytest.mark.parametrize("steps", [3, 12])  # 12: the steps are split between blocks
@pytest.mark.parametrize("n", [32, 136])  # 136: a step spans three 64-row tiles
@pytest.mark.parametrize("P", [4, 8])
@pytest.mark.parametrize("kernels", ["wgmma", "wgmma two warpgroups", "wgmma 128x256",
                                     "wgmma cp.async", "wgmma cp.async 128x256", "mma"])
def test_region_wgrad_adds_each_step_into_the_kept_rows(dtype, R, S, steps, n, P, kernels,
                                                        monkeypatch):
    monkeypatch.setattr(products, "USE_WGMMA", kernels != "mma")
    # S = 0 (keep_all): fed by the copy engine unless "cp.async"
    monkeypatch.setattr(products, "USE_TMA", "cp.async" not in kernels)
    if kernels.endswith("128x256"):  # however few the blocks (S = 0: keep_all)
        monkeypatch.setattr(products, "WIDE_LEAST_BLOCKS", 0)
    if kernels == "wgmma two warpgroups":  # however few the blocks
        monkeypatch.setattr(products, "TWO_WARPGROUP_LEAST_BLOCKS", 0)
    regions, features = 4, 160
    keep = R - S
    values = randn(steps * n, regions * keep * P, dtype=dtype)
    x = randn(steps * n, features, dtype=dtype)
    index = torch.stack([torch.cat([g * R + torch.randperm(R, device="cuda")[:keep].sort().values
                                    for g in range(regions)]) for _ in range(steps)]).int()
    slot = torch.full((steps, regions * R), -1, dtype=torch.int32)
    for t in range(steps):
        for position, slice_number in enumerate(index[t].tolist()):
            slot[t, slice_number] = position
    out = poisoned(regions * R * P, features)
    products.region_wgrad(values, x, index, slot.cuda(), P, R, S, steps, out)
    expected = torch.zeros(regions * R * P, features, dtype=torch.float64, device="cuda")
    for t in range(steps):
        rows = _gathered_rows(index[t], P)
        expected[rows] += values[t * n:(t + 1) * n].double().t() @ x[t * n:(t + 1) * n].double()
    assert relative_error(out, expected) < PRODUCT_TOLERANCE[dtype]


@pytest.mark.parametrize("tiles", ["128x128", "128x256"])
@pytest.mark.parametrize("kc,features", [(256, 192), (136, 72)])  # 136 x 72: ragged tiles
def test_keep_all_wgrad_writes_bfloat16_as_its_float32_sum_rounded(tiles, kc, features,
                                                                   monkeypatch):
    if not products.keep_all_on_tma(torch.bfloat16, torch.device("cuda")):
        pytest.skip("the copy-engine-fed weight gradient needs sm_90")
    monkeypatch.setattr(products, "WIDE_LEAST_BLOCKS", 0 if tiles.endswith("256") else 10**9)
    steps, n = 3, 64  # fewer than 2 * WGRAD_LEAST_STEPS: the steps are never split
    assert products.keep_all_out_dtype(torch.bfloat16, kc, features, steps) == torch.bfloat16
    values = randn(steps * n, kc, dtype=torch.bfloat16)
    x = randn(steps * n, features, dtype=torch.bfloat16)
    out, out_float32 = poisoned(kc, features, dtype=torch.bfloat16), poisoned(kc, features)
    products.keep_all_wgrad(values, x, steps, out)
    products.keep_all_wgrad(values, x, steps, out_float32)
    expected = sum(values[t * n:(t + 1) * n].double().t() @ x[t * n:(t + 1) * n].double()
                   for t in range(steps))
    assert relative_error(out, expected) < PRODUCT_TOLERANCE[torch.bfloat16]
    assert torch.equal(out, out_float32.to(torch.bfloat16))  # what a conversion after gives


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,columns", [(4480, 1024), (33, 70), (1, 5)])  # ragged tiles
def test_transposed_swaps_rows_and_columns(dtype, rows, columns):
    matrix = randn(rows, columns, dtype=dtype)
    out = transposed(matrix)
    assert out.shape == (columns, rows) and out.is_contiguous()
    assert torch.equal(out, matrix.t())  # every element, exactly


@pytest.mark.parametrize("rows,features,depth", [(200, 300, 1000), (384, 256, 4480),
                                                 (64, 40, 36)])
@pytest.mark.parametrize("tiles", ["128x128", "128x256"])
@pytest.mark.parametrize("least_tiles", [1, 10**9])  # 1: k split between blocks; else whole
@pytest.mark.parametrize("add", [False, True])
def test_kmajor_mm_multiplies_by_the_transpose_of_b(rows, features, depth, tiles, least_tiles,
                                                    add, monkeypatch):
    if not products.kmajor_on_tma(torch.float32, torch.device("cuda")):
        pytest.skip("tf32 wgmma needs sm_90")
    monkeypatch.setattr(products, "WIDE_LEAST_BLOCKS", 0 if tiles.endswith("256") else 10**9)
    monkeypatch.setattr(products, "KMAJOR_LEAST_TILES", least_tiles)
    a, b = randn(rows, depth), randn(features, depth)
    out = randn(rows, features) if add else poisoned(rows, features)
    expected = out.double() if add else torch.zeros(rows, features, dtype=torch.float64,
                                                    device="cuda")
    products.kmajor_mm(a, b, out, add=add)
    for k in range(0, depth, 64):  # a sum over k in pieces, not the kernel's order
        expected += a[:, k:k + 64].double() @ b[:, k:k + 64].double().t()
    assert relative_error(out, expected) < PRODUCT_TOLERANCE[torch.float32]


@pytest.mark.parametrize("P", [4, 8, 16])
@pytest.mark.parametrize("steps", [3, 12])  # 12: the steps are split between blocks
@pytest.mark.parametrize("n", [64, 136])  # 136: a step spans three 64-row tiles
@pytest.mark.parametrize("dtype,kernels", [(torch.bfloat16, "wgmma 128x128"),
                                           (torch.bfloat16, "wgmma 128x256"),
                                           (torch.bfloat16, "mma"), (torch.float32, "mma")])
def test_masked_wgrad_sums_only_the_kept_slices_of_dnet(P, steps, n, dtype, kernels,
                                                        monkeypatch):
    monkeypatch.setattr(products, "USE_WGMMA", kernels != "mma")
    monkeypatch.setattr(products, "WIDE_LEAST_BLOCKS", 0 if kernels.endswith("256") else 10**9)
    width, features = 384, 160
    dnet = randn(steps * n, width, dtype=dtype)
    x = randn(steps * n, features, dtype=dtype)
    kept = torch.rand(steps, width // P) < 0.5
    kept[:, :3] = torch.tensor([True, False, True])  # a dropped slice between kept ones
    slot = torch.where(kept, kept.int().cumsum(1) - 1, -1).int()
    out = poisoned(width, features)
    products.masked_wgrad(dnet, x, slot.cuda(), P, steps, out)
    expected = torch.zeros(width, features, dtype=torch.float64)
    for t in range(steps):
        rows = slice(t * n, (t + 1) * n)
        for j in range(width // P):
            if kept[t, j]:
                columns = slice(j * P, (j + 1) * P)
                expected[columns] += (dnet[rows, columns].double().t()
                                      @ x[rows].double()).cpu()
    assert relative_error(out.cpu(), expected) < PRODUCT_TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("P", [4, 8])
# 37 kept slices: whole blocks of 128 compact columns, then a ragged one
@pytest.mark.parametrize("kept_slices", [9, 37])
def test_step_column_sums_scatter_kept_columns_and_zero_the_rest(dtype, P, kept_slices):
    steps, n, width = 2, 48, 64 * P
    values = randn(steps * n, kept_slices * P, dtype=dtype)
    slot = torch.full((steps, width // P), -1, dtype=torch.int32)
    for t in range(steps):
        chosen = torch.randperm(width // P)[:kept_slices].sort().values
        slot[t, chosen] = torch.arange(kept_slices, dtype=torch.int32)
    index = torch.stack([(slot[t] >= 0).nonzero().flatten() for t in range(steps)]).int()
    out = poisoned(steps, width)
    products.step_column_sums(values, index.cuda(), P, width, out)
    expected = torch.zeros(steps, width, dtype=torch.float64)
    for t in range(steps):
        for col in range(width):
            q = slot[t, col // P].item()
            if q >= 0:
                expected[t, col] = values[t * n:(t + 1) * n, q * P + col % P].double().sum()
    assert relative_error(out.cpu(), expected) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("Mx", [4, 2])
@pytest.mark.parametrize("n,width", FINE_SHAPES)
def test_fine_select_zeroes_exactly_the_dropped_blocks_of_dnet(dtype, Mx, n, width):
    My, K = 8, 2
    blocks, slices = n // My, width // Mx
    before, dnet, norms, *_ = _fine_step(dtype, n, width, My, Mx, K)
    for c in range(slices):
        kept = _ranked_keep(norms[c].tolist(), blocks - K)
        for b in range(blocks):
            rows, columns = slice(b * My, (b + 1) * My), slice(c * Mx, (c + 1) * Mx)
            expected = before[rows, columns] if b in kept else torch.zeros_like(before[rows, columns])
            assert torch.equal(dnet[rows, columns], expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("P", [4, 8, 12])
def test_zero_dropped_slices_zeroes_each_steps_dropped_slices_and_nothing_else(dtype, P):
    steps, n, width = 5, 24, 48 * P
    dnet = randn(steps * n, width, dtype=dtype)
    before = dnet.cpu()
    kept = torch.rand(steps, width // P) < 0.5
    slot = torch.where(kept, kept.int().cumsum(1) - 1, -1).int()
    zero_dropped_slices(dnet, slot.cuda(), P, steps)
    after = dnet.cpu()
    for t in range(steps):
        for j in range(width // P):
            block = (slice(t * n, (t + 1) * n), slice(j * P, (j + 1) * P))
            expected = before[block] if kept[t, j] else torch.zeros_like(before[block])
            assert torch.equal(after[block], expected), (t, j)


@pytest.mark.parametrize("steps,groups", [(35, 128), (50, 3), (1, 1)])
def test_step_summary_sums_each_steps_records_as_summarize_does(steps, groups):
    energy = torch.rand(steps, groups, 2, device="cuda")
    energy[..., 1] += energy[..., 0]  # total >= kept
    if steps > 1:
        energy[1] = 0  # a zero gradient counts as all kept
    out = torch.full((3,), math.nan, device="cuda", dtype=torch.float64)
    step_summary(energy, 3, 8, out)
    sums = energy.double().sum(1)
    records = torch.stack([torch.full((steps,), 3 / 8, dtype=torch.float64, device="cuda"),
                           sums[:, 0].sqrt(), sums[:, 1].sqrt()], 1)
    assert torch.allclose(out, summarize(records), rtol=1e-5)


def test_a_compile_error_names_the_cu_file(tmp_path, monkeypatch):
    import cupy
    from sparsetrain.kernels import _loader

    broken = tmp_path / "broken.cu"
    broken.write_text("extern \"C\" __global__ void f() {\n  this is not C;\n}\n")
    monkeypatch.setattr(_loader, "KERNEL_DIR", tmp_path)
    with pytest.raises(cupy.cuda.compiler.CompileException, match="broken.cu"):
        _loader.kernel("broken", "f")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_step_chain_launched_early_computes_what_plain_launches_do(dtype, monkeypatch):
    """Each kernel of the chain reads what the one before it wrote (the cell step the product's
    dh, the product the cell step's dnet): launched early, each must still wait for it."""
    from sparsetrain.kernels import _loader

    launched_early = []
    launch = _loader._launch_on_driver
    monkeypatch.setattr(_loader, "_launch_on_driver",
                        lambda *args: launched_early.append(args[-1]) or launch(*args))

    steps, n, hidden = 12, 256, 1024
    grad_out, gates = randn(steps, n, hidden, dtype=dtype), randn(steps, n, 4 * hidden, dtype=dtype)
    cells, w_hh = randn(steps + 1, n, hidden), randn(4 * hidden, hidden, dtype=dtype) / 64
    rows = torch.arange(4 * hidden // 64, device="cuda", dtype=torch.int32)[None]
    dh_last, dc_last = randn(n, hidden), randn(n, hidden)

    def chain():
        dh, dc = dh_last.clone(), dc_last.clone()
        dnet = poisoned(steps, n, 4 * hidden, dtype=dtype)
        for t in range(steps - 1, -1, -1):
            backward_step(dh, grad_out[t], dc, gates[t], cells[t + 1], cells[t], dnet[t],
                          clear_dh_rec=True)
            products.gather_mm(dnet[t], w_hh, rows, 64, n, dh)
        return dh, dc, dnet

    plain = chain()
    assert launched_early == [False] * 2 * steps
    with _loader.early_launches():
        early = chain()
    assert launched_early[2 * steps:] == [True] * 2 * steps
    for name, a, b in zip(("dh", "dc", "dnet"), plain, early):
        assert torch.equal(a, b), name
