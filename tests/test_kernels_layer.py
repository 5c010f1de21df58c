"""The whole layer on the kernels against the torch reference run in float64 (GPU only).

Inputs are random but shaped so that every selection is decided by a wide margin: gate biases
give the slices of a region (and the columns meprop ranks) distinct magnitudes, and the output
gradient of each row block has its own scale. Rounding then cannot flip a kept/dropped choice,
so the comparison checks the indexing exactly and the arithmetic to rounding.
"""

import dataclasses

import pytest
import torch

pytest.importorskip("cupy")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from sparsetrain.kernels.lstm_layer import CupyLSTMLayer, lstm_layer  # noqa: E402
from sparsetrain.nn import reference  # noqa: E402
from sparsetrain.sparsify import build  # noqa: E402

pytestmark = pytest.mark.gpu
TOLERANCE = {torch.float32: 3e-3, torch.bfloat16: 1e-2}  # tf32 / bf16 tensor-core operands
SPECS = [
    {"name": "dense"},
    {"name": "coarse", "P": 4, "R": 8, "S": 4},
    {"name": "coarse", "P": 4, "R": 8, "S": 2},
    {"name": "fine", "My": 8, "Mx": 4, "K": 2},
    {"name": "meprop", "keep": 0.5},
]
STEPS, BATCH, INPUT, HIDDEN = 4, 64, 48, 64


def _random(generator):
    def rand(*shape, scale=1.0):
        return torch.randn(*shape, device="cuda", generator=generator) * scale
    return rand


def separated_inputs(dtype):
    """Slices of each region, and row blocks of each slice, whose norms differ by wide factors.

    The output gradient of hidden unit j is scaled by 4^level, the level a permutation of 1..8
    over the 8 slices (4 units each) of every 32-unit region, and each 8-row block by 4^k, k a
    permutation of the blocks. Rows never mix, and a tiny W_hh keeps units from mixing, so
    every slice and block norm stays a factor ~16 from its neighbours. Gates stay unsaturated
    so bf16 storage costs only its rounding.
    """
    rand = _random(torch.Generator(device="cuda").manual_seed(torch.seed() % 2**31))
    width = 4 * HIDDEN
    levels = torch.cat([torch.randperm(8, device="cuda") for _ in range(HIDDEN // 32)]) + 1
    unit_scale = (4.0 ** levels).repeat_interleave(4)
    row_scale = (4.0 ** torch.randperm(BATCH // 8, device="cuda")).repeat_interleave(8)[:, None]
    tensors = dict(
        x=rand(STEPS, BATCH, INPUT), h0=rand(BATCH, HIDDEN, scale=0.5),
        c0=rand(BATCH, HIDDEN), w_ih=rand(width, INPUT, scale=0.03),
        w_hh=rand(width, HIDDEN, scale=1e-7), b_ih=rand(width, scale=0.1),
        b_hh=rand(width, scale=0.1), d_out=rand(STEPS, BATCH, HIDDEN) * row_scale * unit_scale,
        d_h=rand(BATCH, HIDDEN) * row_scale * unit_scale,
        d_c=rand(BATCH, HIDDEN) * row_scale * unit_scale)
    return {k: v.to(dtype) for k, v in tensors.items()}


def unit_scaled_inputs(dtype):
    """Half the hidden units get 1000 times the output gradient of the others, and W_hh is
    tiny, so meprop's top half of the columns (the four gates of those units) is unambiguous."""
    rand = _random(torch.Generator(device="cuda").manual_seed(torch.seed() % 2**31))
    width = 4 * HIDDEN
    unit_scale = torch.ones(HIDDEN, device="cuda")
    unit_scale[torch.randperm(HIDDEN, device="cuda")[: HIDDEN // 2]] = 1000.0
    tensors = dict(
        x=rand(STEPS, BATCH, INPUT), h0=rand(BATCH, HIDDEN, scale=0.5),
        c0=rand(BATCH, HIDDEN), w_ih=rand(width, INPUT, scale=0.03),
        w_hh=rand(width, HIDDEN, scale=1e-4), b_ih=rand(width, scale=0.1),
        b_hh=rand(width, scale=0.1), d_out=rand(STEPS, BATCH, HIDDEN) * unit_scale,
        d_h=rand(BATCH, HIDDEN) * unit_scale, d_c=rand(BATCH, HIDDEN) * unit_scale)
    return {k: v.to(dtype) for k, v in tensors.items()}


def inputs_for(spec, dtype):
    return (unit_scaled_inputs if spec["name"] == "meprop" else separated_inputs)(dtype)


def gradients(layer, inputs, spec, dtype):
    leaves = {k: inputs[k].detach().to(dtype).requires_grad_()
              for k in ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")}
    sparsifier = build(spec)
    out, h_n, c_n = layer(*leaves.values(), sparsifier)
    torch.autograd.backward([out, h_n, c_n], [inputs["d_out"].to(dtype), inputs["d_h"].to(dtype),
                                              inputs["d_c"].to(dtype)])
    return {k: v.grad for k, v in leaves.items()}, (out, h_n, c_n), sparsifier.stats()


def relative_error(out, ref):
    out, ref = out.double(), ref.double()
    assert not torch.isnan(out).any()
    return ((out - ref).norm() / ref.norm()).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
def test_layer_gradients_match_the_torch_reference(dtype, spec):
    inputs = inputs_for(spec, dtype)
    ours, outs, _ = gradients(lstm_layer, inputs, spec, dtype)
    ref, ref_outs, _ = gradients(reference.lstm_layer, inputs, spec, torch.float64)
    for mine, theirs in zip(outs, ref_outs):
        assert relative_error(mine, theirs) < TOLERANCE[dtype]
    for name in ours:
        assert relative_error(ours[name], ref[name]) < TOLERANCE[dtype], name


@pytest.mark.parametrize("spec", SPECS[1:], ids=lambda s: s["name"])
def test_layer_reports_the_reference_statistics(spec):
    inputs = inputs_for(spec, torch.float32)
    _, _, ours = gradients(lstm_layer, inputs, spec, torch.float32)
    _, _, ref = gradients(reference.lstm_layer, inputs, spec, torch.float64)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-6), key


def test_layer_runs_on_the_kernels_not_the_fallback(monkeypatch):
    calls = []
    monkeypatch.setattr(CupyLSTMLayer, "apply", lambda *a: calls.append(a) or reference.lstm_layer(*a))
    inputs = separated_inputs(torch.float32)
    gradients(lstm_layer, inputs, {"name": "coarse", "R": 8, "S": 4}, torch.float32)
    assert len(calls) == 1


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[3]], ids=lambda s: s["name"])
def test_layer_gives_the_same_results_eagerly_and_replayed_as_graphs(spec, monkeypatch):
    inputs = separated_inputs(torch.float32)
    replayed, replayed_outs, _ = gradients(lstm_layer, inputs, spec, torch.float32)
    monkeypatch.setenv("SPARSETRAIN_CUDA_GRAPHS", "0")
    eager, eager_outs, _ = gradients(lstm_layer, inputs, spec, torch.float32)
    for mine, theirs in zip(replayed_outs, eager_outs):
        assert relative_error(mine, theirs) < 1e-6
    for name in eager:
        assert relative_error(replayed[name], eager[name]) < 1e-6, name


WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")


def _call(layer, inputs, weights, spec):
    """One call of a layer whose weights are `weights` (shared leaves): its own input leaves and
    its outputs with their gradients."""
    states = {k: inputs[k].detach().requires_grad_() for k in ("x", "h0", "c0")}
    outputs = layer(*states.values(), *weights.values(), build(spec))
    return states, outputs, [inputs["d_out"], inputs["d_h"], inputs["d_c"]]


@pytest.mark.parametrize("order", ["first backward first", "second backward first"])
def test_two_calls_of_one_layer_before_their_backwards_each_get_their_own_gradients(order):
    spec = SPECS[1]
    first, second = separated_inputs(torch.float32), separated_inputs(torch.float32)
    second.update({k: first[k] for k in WEIGHTS})
    weights = {k: first[k].detach().requires_grad_() for k in WEIGHTS}
    calls = [_call(lstm_layer, inputs, weights, spec) for inputs in (first, second)]
    for states, outputs, output_gradients in (calls if order.startswith("first") else calls[::-1]):
        torch.autograd.backward(list(outputs), output_gradients)
    for inputs, (states, _, _) in zip((first, second), calls):
        ref, _, _ = gradients(reference.lstm_layer, inputs, spec, torch.float64)
        for name, leaf in states.items():
            assert relative_error(leaf.grad, ref[name]) < TOLERANCE[torch.float32], name
    refs = [gradients(reference.lstm_layer, inputs, spec, torch.float64)[0]
            for inputs in (first, second)]
    for name in WEIGHTS:  # both calls' gradients, summed
        assert relative_error(weights[name].grad, refs[0][name] + refs[1][name]) < 3e-3, name


def test_a_forward_after_the_last_calls_backward_copies_nothing_out(monkeypatch):
    from sparsetrain.kernels import graphs

    moved = []
    move_out = graphs.Handoff.move_out
    monkeypatch.setattr(graphs.Handoff, "move_out",
                        lambda self: moved.append(self) or move_out(self))
    spec = SPECS[1]
    first, second = separated_inputs(torch.float32), separated_inputs(torch.float32)
    second.update({k: first[k] for k in WEIGHTS})
    weights = {k: first[k].detach().requires_grad_() for k in WEIGHTS}
    _, outputs, output_gradients = _call(lstm_layer, first, weights, spec)
    torch.autograd.backward(list(outputs), output_gradients)
    states, later_outputs, later_gradients = _call(lstm_layer, second, weights, spec)
    assert moved == []  # the first call's graph is alive, but no backward can read it
    torch.autograd.backward(list(later_outputs), later_gradients)
    ref, _, _ = gradients(reference.lstm_layer, second, spec, torch.float64)
    for name, leaf in states.items():
        assert relative_error(leaf.grad, ref[name]) < TOLERANCE[torch.float32], name


def test_a_second_backward_through_a_retained_graph_adds_the_same_gradients():
    spec = SPECS[0]
    inputs = separated_inputs(torch.float32)
    weights = {k: inputs[k].detach().requires_grad_() for k in WEIGHTS}
    states, outputs, output_gradients = _call(lstm_layer, inputs, weights, spec)
    torch.autograd.backward(list(outputs), output_gradients, retain_graph=True)
    once = {name: leaf.grad.clone() for name, leaf in {**states, **weights}.items()}
    torch.autograd.backward(list(outputs), output_gradients)
    for name, leaf in {**states, **weights}.items():
        assert relative_error(leaf.grad, 2 * once[name]) < 1e-4, name  # split-K adds in any order


def test_a_replayed_graph_follows_new_inputs_of_the_same_shape():
    spec = SPECS[1]
    first, second = separated_inputs(torch.float32), separated_inputs(torch.float32)
    gradients(lstm_layer, first, spec, torch.float32)
    ours, outs, _ = gradients(lstm_layer, second, spec, torch.float32)
    ref, ref_outs, _ = gradients(reference.lstm_layer, second, spec, torch.float64)
    for mine, theirs in zip(outs, ref_outs):
        assert relative_error(mine, theirs) < TOLERANCE[torch.float32]
    for name in ours:
        assert relative_error(ours[name], ref[name]) < TOLERANCE[torch.float32], name


def randn(*shape):
    return torch.randn(*shape, device="cuda")


def _layer_state(T=3, N=64, H=32):
    from sparsetrain.kernels import backward as plans

    return plans.LayerState(
        x=randn(T, N, H), w_ih=randn(4 * H, H), w_hh=randn(4 * H, H),
        hidden=randn(T + 1, N, H), cells=randn(T + 1, N, H),
        gates=torch.rand(T, N, 4 * H, device="cuda"), d_output=randn(T, N, H),
        d_h_last=None, d_c_last=None)


def test_a_replay_may_be_handed_the_graphs_own_input_copies():
    from sparsetrain.kernels import graphs

    state = _layer_state()
    sparsifier = build({"name": "dense"})
    graphs._graphs.clear()
    first = graphs.run(sparsifier, state)
    first = {field: getattr(first, field).clone() for field in ("d_x", "d_w_ih", "d_w_hh", "d_h0")}
    (_, captured), = graphs._graphs.items()
    again = graphs.run(sparsifier, captured.inputs)  # replays that graph: nobody holds it
    assert len(graphs._graphs) == 1
    # Not bitwise: the per-step product's split-K partial sums are added in any order, and a
    # last-bit difference in dh can round the next step's tf32 operands the other way (8e-6
    # in d_x seen on H100). Reading the wrong inputs would differ by order one.
    for field in ("d_x", "d_w_ih", "d_w_hh", "d_h0"):
        assert relative_error(getattr(again, field), first[field]) < 1e-4, field


GRADIENT_FIELDS = ("d_x", "d_h0", "d_c0", "d_w_ih", "d_w_hh", "d_bias")


def _with_output_gradient(state, seed):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return dataclasses.replace(state, d_output=torch.randn(
        state.d_output.shape, device="cuda", generator=generator))


def test_a_backward_whose_gradients_were_released_replays_into_the_same_buffers():
    from sparsetrain.kernels import graphs

    graphs._graphs.clear()
    state, sparsifier = _layer_state(), build(SPECS[1])
    first = graphs.run(sparsifier, state)
    addresses = [getattr(first, name).data_ptr() for name in GRADIENT_FIELDS]
    del first
    again = graphs.run(sparsifier, _with_output_gradient(state, 1))
    assert [getattr(again, name).data_ptr() for name in GRADIENT_FIELDS] == addresses
    assert len(graphs._graphs) == 1


def test_gradients_kept_from_a_backward_keep_their_values_through_later_backwards():
    from sparsetrain.kernels import graphs

    graphs._graphs.clear()
    state, sparsifier = _layer_state(), build(SPECS[1])
    kept = graphs.run(sparsifier, state)
    values = {name: getattr(kept, name).clone() for name in GRADIENT_FIELDS}
    # the second replays another graph; with both held, the third runs eagerly
    later = [graphs.run(sparsifier, _with_output_gradient(state, seed)) for seed in (1, 2)]
    for name in GRADIENT_FIELDS:
        assert torch.equal(getattr(kept, name), values[name]), name
        assert not torch.equal(getattr(later[0], name), values[name]), name


def test_a_view_of_a_handed_out_gradient_holds_its_buffers():
    from sparsetrain.kernels import graphs

    graphs._graphs.clear()
    state, sparsifier = _layer_state(), build(SPECS[1])
    view = graphs.run(sparsifier, state).d_x.reshape(-1)
    value = view.clone()
    graphs.run(sparsifier, _with_output_gradient(state, 1))
    assert torch.equal(view, value)


def _trained_weights(set_to_none, steps=3):
    """A two-layer LSTM's weights after SGD steps with zero_grad and gradient clipping, as the
    trainer takes them, on new inputs each step."""
    from sparsetrain.nn import LSTM

    torch.manual_seed(0)
    model = LSTM(INPUT, HIDDEN, 2, sparsifier=SPECS[1], backend="cupy").cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    generator = torch.Generator(device="cuda").manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=set_to_none)
        x = torch.randn(STEPS, BATCH, INPUT, device="cuda", generator=generator)
        target = torch.randn(STEPS, BATCH, HIDDEN, device="cuda", generator=generator)
        output, _ = model(x)
        (output * target).sum().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return {name: weight.detach().clone() for name, weight in model.named_parameters()}


@pytest.mark.parametrize("set_to_none", [True, False], ids=["grads set to None", "grads zeroed"])
def test_training_steps_through_graphs_match_eager_training_steps(set_to_none, monkeypatch):
    from sparsetrain.kernels import graphs

    graphs._graphs.clear()
    replayed = _trained_weights(set_to_none)
    backward_graphs = sum(key[0] == "backward" for key in graphs._graphs)
    # set to None, nothing holds a layer's gradients at its next backward: one graph a layer;
    # zeroed leaves may keep those autograd handed them, and the next of two graphs replays
    if set_to_none:
        assert backward_graphs == 2
    else:
        assert 2 <= backward_graphs <= 2 * graphs.GRAPHS_PER_BACKWARD
    monkeypatch.setenv("SPARSETRAIN_CUDA_GRAPHS", "0")
    eager = _trained_weights(set_to_none)
    for name in eager:
        assert relative_error(replayed[name], eager[name]) < 1e-4, name


@pytest.mark.parametrize("spec", [SPECS[0], SPECS[1]], ids=lambda s: s["name"])
def test_backwards_of_held_graphs_match_their_eager_gradients(spec, monkeypatch):
    from sparsetrain.kernels import graphs

    graphs._graphs.clear()
    base, sparsifier = _layer_state(), build(spec)
    states = [_with_output_gradient(base, seed) for seed in range(4)]
    replayed = [graphs.run(sparsifier, state) for state in states]  # two graphs, then eager
    assert len(graphs._graphs) == graphs.GRAPHS_PER_BACKWARD
    monkeypatch.setenv("SPARSETRAIN_CUDA_GRAPHS", "0")
    for state, ours in zip(states, replayed):
        eager = graphs.run(sparsifier, state)
        for name in GRADIENT_FIELDS:  # split-K adds in any order (see the test above)
            assert relative_error(getattr(ours, name), getattr(eager, name)) < 1e-4, name


def _forward_graphs():
    from sparsetrain.kernels import graphs

    return [captured for key, captured in graphs._graphs.items() if key[0] == "forward"]


def test_the_forward_graph_follows_weights_updated_in_place_between_calls():
    spec = SPECS[1]
    first, second = separated_inputs(torch.float32), separated_inputs(torch.float32)
    weights = {k: first[k].detach().requires_grad_() for k in WEIGHTS}
    _call(lstm_layer, first, weights, spec)
    with torch.no_grad():  # as an optimizer step does: same tensors, new values
        for name in WEIGHTS:
            weights[name].copy_(second[name])
    states, outputs, _ = _call(lstm_layer, second, weights, spec)
    ref_outputs = reference.lstm_layer(*(second[k] for k in ("x", "h0", "c0")),
                                       *(second[k] for k in WEIGHTS), build(spec))
    for mine, theirs in zip(outputs, ref_outputs):
        assert relative_error(mine, theirs) < TOLERANCE[torch.float32]


def test_non_contiguous_weights_run_one_forward_graph_and_match_the_reference():
    spec = SPECS[0]
    inputs = separated_inputs(torch.float32)
    transposed = {k: inputs[k].t().contiguous().t().requires_grad_() for k in ("w_ih", "w_hh")}
    assert not transposed["w_ih"].is_contiguous()
    weights = {**{k: inputs[k].detach().requires_grad_() for k in ("b_ih", "b_hh")},
               **transposed}
    weights = {k: weights[k] for k in WEIGHTS}
    from sparsetrain.kernels import graphs

    graphs._graphs.clear()
    for _ in range(3):
        states, outputs, output_gradients = _call(lstm_layer, inputs, weights, spec)
        torch.autograd.backward(list(outputs), output_gradients)
    assert len(_forward_graphs()) == 1
    ref, _, _ = gradients(reference.lstm_layer, inputs, spec, torch.float64)
    for name, leaf in states.items():
        assert relative_error(leaf.grad, ref[name]) < TOLERANCE[torch.float32], name


def test_a_backward_copies_only_the_output_gradient_into_its_graph(monkeypatch):
    from sparsetrain.kernels import graphs

    copied = []
    copy_into = graphs._copy_into
    monkeypatch.setattr(graphs, "_copy_into", lambda record, tensors: copied.append(
        [name for name, tensor in tensors.items()
         if getattr(record, name).data_ptr() != tensor.data_ptr()])
        or copy_into(record, tensors))
    inputs = separated_inputs(torch.float32)
    weights = {k: inputs[k].detach().requires_grad_() for k in WEIGHTS}
    for _ in range(2):  # the second call replays both graphs
        copied.clear()
        _, outputs, _ = _call(lstm_layer, inputs, weights, SPECS[0])
        torch.autograd.backward(outputs[0], inputs["d_out"])
    forward_copies, backward_copies = copied
    assert sorted(forward_copies) == ["bias", "c0", "h0", "x"]
    assert backward_copies == ["d_output"]


def _assert_gradients_and_statistics_match_the_reference(spec, dtype):
    inputs = separated_inputs(dtype)
    ours, _, our_stats = gradients(lstm_layer, inputs, spec, dtype)
    ref, _, ref_stats = gradients(reference.lstm_layer, inputs, spec, torch.float64)
    for name in ours:
        assert relative_error(ours[name], ref[name]) < TOLERANCE[dtype], name
    for key in ref_stats:
        assert our_stats[key] == pytest.approx(ref_stats[key], rel=1e-3, abs=1e-6), key


@pytest.mark.parametrize("spec", [SPECS[1], SPECS[2]], ids=lambda s: f"S{s['S']}")
@pytest.mark.parametrize("fused", [True, False], ids=["cell step selects", "coarse_select"])
def test_coarse_as_dense_products_match_the_torch_reference(spec, fused, monkeypatch):
    from sparsetrain.kernels import backward, graphs

    # float32 on tf32 wgmma takes this path only where 128 rows divide the batch; these 64 too
    monkeypatch.setattr(backward, "COARSE_AS_DENSE_ROWS", BATCH)
    monkeypatch.setattr(backward, "FUSED_COARSE_STEP", fused)
    graphs._graphs.clear()  # no graph captured on the other path may be replayed
    _assert_gradients_and_statistics_match_the_reference(spec, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("spec", [SPECS[1], SPECS[2]], ids=lambda s: f"S{s['S']}")
def test_coarse_selecting_before_a_plain_product_matches_the_torch_reference(dtype, spec,
                                                                             monkeypatch):
    from sparsetrain.kernels import backward, graphs

    # the path of steps whose dnet has at least COMPACT_BEFORE_PRODUCT_BYTES (xl bf16)
    monkeypatch.setattr(backward, "COMPACT_BEFORE_PRODUCT_BYTES", 0)
    graphs._graphs.clear()  # no graph captured on the other path may be replayed
    _assert_gradients_and_statistics_match_the_reference(spec, dtype)


def test_a_backward_after_a_weight_was_changed_in_place_is_refused():
    spec = SPECS[1]
    inputs = separated_inputs(torch.float32)
    weights = {k: inputs[k].detach().requires_grad_() for k in WEIGHTS}
    _, outputs, output_gradients = _call(lstm_layer, inputs, weights, spec)
    with torch.no_grad():
        weights["w_hh"].mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.backward(list(outputs), output_gradients)
