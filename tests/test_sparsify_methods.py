"""The gate-gradient methods: what each keeps, its compact form, statistics and errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

import slow_reference
from sparsetrain import ConfigError, sparsify

FAST = settings(max_examples=25, deadline=None)


def _random(rows, columns, seed=0, dtype=torch.float64):
    return torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed)).to(dtype)


@st.composite
def coarse_cases(draw):
    P = draw(st.sampled_from([1, 2, 4]))
    R = draw(st.integers(2, 8))
    S = draw(st.integers(0, R - 1))
    regions = draw(st.integers(1, 4))
    rows = draw(st.integers(1, 9))
    return {"name": "coarse", "P": P, "R": R, "S": S}, _random(rows, P * R * regions,
                                                               draw(st.integers(0, 99)))


@st.composite
def fine_cases(draw):
    My = draw(st.sampled_from([1, 2, 4, 8]))
    Mx = draw(st.sampled_from([1, 2, 4]))
    blocks = draw(st.integers(1, 6))
    K = draw(st.integers(0, blocks - 1))
    slices = draw(st.integers(1, 6))
    return {"name": "fine", "My": My, "Mx": Mx, "K": K}, _random(blocks * My, slices * Mx,
                                                                 draw(st.integers(0, 99)))


@FAST
@given(coarse_cases())
def test_coarse_keeps_exactly_R_minus_S_slices_per_region_as_the_slow_loop(case):
    spec, dnet = case
    kept = sparsify.build(spec)(dnet)
    P, R, S = spec["P"], spec["R"], spec["S"]
    torch.testing.assert_close(kept, slow_reference.coarse(dnet, P, R, S), rtol=0, atol=0)
    slice_alive = (kept != 0).reshape(dnet.shape[0], -1, R, P).any(dim=0).any(dim=-1)
    assert (slice_alive.sum(dim=1) == R - S).all()


@FAST
@given(fine_cases())
def test_fine_keeps_exactly_blocks_minus_K_per_slice_as_the_slow_loop(case):
    spec, dnet = case
    kept = sparsify.build(spec)(dnet)
    My, Mx, K = spec["My"], spec["Mx"], spec["K"]
    torch.testing.assert_close(kept, slow_reference.fine(dnet, My, Mx, K), rtol=0, atol=0)
    blocks = dnet.shape[0] // My
    block_alive = (kept != 0).reshape(blocks, My, -1, Mx).any(dim=3).any(dim=1)
    assert (block_alive.sum(dim=0) == blocks - K).all()


@FAST
@given(keep=st.floats(0.01, 1.0), rows=st.integers(1, 6), columns=st.integers(1, 40),
       seed=st.integers(0, 99))
def test_meprop_keeps_k_whole_columns_as_the_slow_loop(keep, rows, columns, seed):
    dnet = _random(rows, columns, seed)
    kept = sparsify.build({"name": "meprop", "keep": keep})(dnet)
    torch.testing.assert_close(kept, slow_reference.meprop(dnet, keep), rtol=0, atol=0)
    assert int((kept != 0).any(dim=0).sum()) == max(1, round(keep * columns))


@FAST
@given(tau=st.floats(0.0, 2.0), seed=st.integers(0, 99))
def test_threshold_keeps_entries_at_or_above_tau(tau, seed):
    dnet = _random(4, 12, seed)
    kept = sparsify.build({"name": "threshold", "tau": tau})(dnet)
    torch.testing.assert_close(kept, slow_reference.threshold(dnet, tau), rtol=0, atol=0)


def test_threshold_zero_keeps_everything():
    dnet = _random(8, 32)
    assert torch.equal(sparsify.build({"name": "threshold", "tau": 0.0})(dnet), dnet)


@pytest.mark.parametrize("target", [0.1, 0.5, 0.9])
def test_adaptive_zeroes_its_target_fraction_within_one_percent(target):
    sp = sparsify.build({"name": "adaptive", "target": target})
    for seed in range(5):
        kept = sp(_random(64, 2048, seed, torch.float32))
        assert abs(float((kept == 0).double().mean()) - target) < 0.01
    assert abs(sp.stats()["sparsity"] - target) < 0.01


@pytest.mark.parametrize("spec", [
    {"name": "coarse", "P": 4, "R": 8, "S": 4},
    {"name": "fine", "My": 8, "Mx": 4, "K": 3},
    {"name": "meprop", "keep": 0.3},
])
def test_kept_entries_equal_dnet_and_dropped_are_zero(spec):
    dnet = _random(32, 128, 5)
    kept = sparsify.build(spec)(dnet)
    alive = kept != 0
    assert torch.equal(kept[alive], dnet[alive])
    assert 0 < alive.double().mean() < 1


@pytest.mark.parametrize("spec,values_shape,index_shape", [
    ({"name": "coarse", "P": 4, "R": 8, "S": 6}, (16, 32), (4, 2)),
    ({"name": "fine", "My": 8, "Mx": 4, "K": 1}, (32, 1, 8, 4), (32, 1)),
    ({"name": "meprop", "keep": 0.25}, (16, 32), (32,)),
])
def test_compact_form_has_the_documented_layout_and_expands_back(spec, values_shape,
                                                                  index_shape):
    dnet = _random(16, 128, 7)
    sp = sparsify.build(spec)
    compact = sp.compact(dnet)
    assert tuple(compact.values.shape) == values_shape
    assert tuple(compact.index.shape) == index_shape
    assert compact.index.dtype == torch.int32
    assert (compact.index.diff(dim=-1) > 0).all()
    assert torch.equal(sp.expand(compact, tuple(dnet.shape)), sp(dnet))


def test_coarse_index_holds_global_slice_numbers():
    dnet = torch.zeros(2, 16, dtype=torch.float64)
    dnet[:, 4:8] = 1.0   # slice 1 of region 0
    dnet[:, 8:12] = 2.0  # slice 2, the first of region 1
    compact = sparsify.build({"name": "coarse", "P": 4, "R": 2, "S": 1}).compact(dnet)
    assert compact.index.tolist() == [[1], [2]]


def test_ties_keep_the_lower_index():
    dnet = torch.ones(2, 8, dtype=torch.float64)
    kept = sparsify.build({"name": "coarse", "P": 1, "R": 4, "S": 2})(dnet)
    assert (kept != 0).all(dim=0).tolist() == [True, True, False, False] * 2


def test_decisions_use_float32_norms_for_bfloat16():
    dnet = _random(16, 64, 3, torch.float32)
    spec = {"name": "coarse", "P": 4, "R": 4, "S": 2}
    from_bf16 = sparsify.build(spec)(dnet.bfloat16())
    from_f32 = sparsify.build(spec)(dnet.bfloat16().float())
    assert torch.equal(from_bf16.float() != 0, from_f32 != 0)


def test_stats_report_sparsity_kept_energy_and_cosine_then_reset():
    dnet = _random(8, 32, 9)
    sp = sparsify.build({"name": "coarse", "P": 4, "R": 4, "S": 1})
    kept = sp(dnet)
    stats = sp.stats()
    energy = float(kept.square().sum() / dnet.square().sum())
    assert stats["sparsity"] == pytest.approx(0.25)
    assert stats["kept_energy"] == pytest.approx(energy, rel=1e-6)
    cosine = float((kept * dnet).sum() / (kept.norm() * dnet.norm()))
    assert stats["cosine"] == pytest.approx(cosine, rel=1e-6)
    assert sp.stats() == {}


def test_dense_stats_are_exact():
    sp = sparsify.build({"name": "dense"})
    sp(_random(4, 8))
    assert sp.stats() == {"sparsity": 0.0, "kept_energy": 1.0, "cosine": 1.0}


def test_resolve_fills_defaults():
    assert sparsify.resolve({"name": "fine", "K": 2}) == \
        {"name": "fine", "My": 8, "Mx": 4, "K": 2}
    assert sparsify.resolve({"name": "meprop", "keep": 1}) == \
        {"name": "meprop", "keep": 1.0, "target": "dnet"}


@pytest.mark.parametrize("spec,message", [
    ({"name": "corse", "R": 8, "S": 4}, r"method\.name: unknown method 'corse'; did you mean coarse"),
    ({"name": "coarse", "R": 8, "S": 8}, r"method\.S: must be < R \(8\), got 8"),
    ({"name": "coarse", "R": 8}, r"method\.S: required by method coarse"),
    ({"name": "coarse", "R": 0, "S": 0}, r"method\.R: must be > 0, got 0"),
    ({"name": "coarse", "R": 8.5, "S": 4}, r"method\.R: expected an integer, got 8\.5"),
    ({"name": "coarse", "R": True, "S": 0}, r"method\.R: expected an integer, got True"),
    ({"name": "coarse", "R": 8, "S": 4, "Q": 1}, r"method\.Q: unknown parameter of coarse"),
    ({"name": "fine", "K": -1}, r"method\.K: must be >= 0, got -1"),
    ({"name": "threshold", "tau": -0.1}, r"method\.tau: must be >= 0, got -0\.1"),
    ({"name": "meprop", "keep": 0}, r"method\.keep: must be in \(0, 1\], got 0"),
    ({"name": "meprop", "keep": 1.5}, r"method\.keep: must be in \(0, 1\], got 1\.5"),
    ({"name": "meprop", "keep": 0.5, "target": "dc"}, r"method\.target: must be one of dnet, dh"),
    ({"name": "adaptive", "target": 1.0}, r"method\.target: must be in \[0, 1\), got 1\.0"),
    ("coarse", r"method: expected a mapping"),
])
def test_invalid_parameters_are_refused_naming_the_key_and_rule(spec, message):
    with pytest.raises(ConfigError, match=message):
        sparsify.build(spec)


def test_every_problem_in_a_spec_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        sparsify.resolve({"name": "coarse", "R": "x", "S": -1, "extra": 1}, where="schedule[1].method")
    lines = str(error.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("schedule[1].method.") for line in lines)


@pytest.mark.parametrize("spec,shape,message", [
    ({"name": "coarse", "P": 4, "R": 8, "S": 4}, (4, 48), r"method\.R: 4H \(48\) must be divisible by P\*R"),
    ({"name": "fine", "My": 8, "Mx": 4, "K": 1}, (12, 32), r"method\.My: batch N \(12\) must be divisible by My"),
    ({"name": "fine", "My": 8, "Mx": 4, "K": 2}, (16, 32), r"method\.K: K must be < N/My \(16/8=2\)"),
    ({"name": "fine", "My": 2, "Mx": 3, "K": 0}, (4, 32), r"method\.Mx: 4H \(32\) must be divisible by Mx"),
])
def test_shape_rules_are_checked_at_the_first_call(spec, shape, message):
    sp = sparsify.build(spec)
    with pytest.raises(ConfigError, match=message):
        sp(torch.randn(*shape))


def test_statistics_recorded_by_a_fused_backend_join_the_averages():
    sp = sparsify.build({"name": "coarse", "P": 4, "R": 4, "S": 2})
    sp(_random(8, 32, 4))
    first = sp.stats()
    sp(_random(8, 32, 4))
    records = torch.tensor([[0.25, 1.0, 2.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    sp.record_steps(sparsify.summarize(records), steps=2)
    sp.record_steps(None, steps=1)
    stats = sp.stats()
    # per call (sparsity, kept energy, cosine): the direct call, then (0.75, 0.25, 0.5),
    # (0.5, 1, 1) for a zero gradient, and (0, 1, 1) for a call that kept everything
    assert stats["sparsity"] == pytest.approx((first["sparsity"] + 0.75 + 0.5 + 0) / 4)
    assert stats["kept_energy"] == pytest.approx((first["kept_energy"] + 0.25 + 1 + 1) / 4)
    assert stats["cosine"] == pytest.approx((first["cosine"] + 0.5 + 1 + 1) / 4)


def test_a_recorded_summary_is_not_kept_by_the_sparsifier():
    sp = sparsify.build({"name": "coarse", "P": 4, "R": 4, "S": 2})
    summary = sparsify.summarize(torch.tensor([[0.25, 1.0, 2.0]], dtype=torch.float64))
    sp.record_steps(summary, steps=1)
    summary.fill_(7.0)  # as a graph's next replay overwrites its buffer
    assert sp.stats()["sparsity"] == pytest.approx(0.75)
