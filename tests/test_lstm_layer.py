"""sparsetrain.nn.LSTM: torch.nn.LSTM's behaviour when dense, the method's when sparse."""

from __future__ import annotations

import pytest
import torch

import slow_reference
from sparsetrain import ConfigError, sparsify
from sparsetrain.nn import LSTM


def _pair(input_size, hidden_size, num_layers, bias, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(input_size, hidden_size, num_layers=num_layers, bias=bias).double()
    ours = LSTM(input_size, hidden_size, num_layers=num_layers, bias=bias).double()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _inputs(steps, batch, input_size, hidden_size, num_layers, seed=1):
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.double, requires_grad=True)

    return (draw(steps, batch, input_size), draw(num_layers, batch, hidden_size),
            draw(num_layers, batch, hidden_size))


def _loss_and_grads(module, x, h0, c0, weight_seed=2):
    output, (h_n, c_n) = module(x, (h0, c0))
    generator = torch.Generator().manual_seed(weight_seed)
    loss = ((output * torch.randn(output.shape, generator=generator, dtype=output.dtype)).sum()
            + 0.3 * h_n.sum() + 0.7 * c_n.sum())
    grads = torch.autograd.grad(loss, [x, h0, c0, *module.parameters()])
    return (output, h_n, c_n), grads


@pytest.mark.parametrize("steps,batch,input_size,hidden_size", [(1, 1, 3, 2), (5, 4, 6, 8),
                                                                (7, 3, 10, 5)])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_torch_lstm_outputs_and_every_gradient(steps, batch, input_size,
                                                             hidden_size, num_layers, bias):
    ref, ours = _pair(input_size, hidden_size, num_layers, bias)
    x, h0, c0 = _inputs(steps, batch, input_size, hidden_size, num_layers)
    ref_out, ref_grads = _loss_and_grads(ref, x, h0, c0)
    our_out, our_grads = _loss_and_grads(ours, x, h0, c0)
    for expected, actual in zip(ref_out + ref_grads, our_out + our_grads):
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10)


def test_parameter_names_and_shapes_equal_torch_lstm():
    ref, ours = _pair(4, 6, 2, True)
    assert {k: v.shape for k, v in ref.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}


def test_state_dict_loads_back_into_torch_lstm():
    ref, ours = _pair(4, 6, 2, True)
    torch.nn.init.normal_(ours.weight_hh_l1)
    ref.load_state_dict(ours.state_dict())
    assert torch.equal(ref.weight_hh_l1, ours.weight_hh_l1)


def test_missing_initial_state_means_zeros():
    ref, ours = _pair(3, 4, 2, True)
    x = torch.randn(5, 2, 3, dtype=torch.double)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=0, atol=1e-12)


def _slow_hooks(spec):
    name = spec["name"]
    if name == "coarse":
        return {"dnet_hook": lambda g: slow_reference.coarse(g, spec["P"], spec["R"], spec["S"])}
    if name == "fine":
        return {"dnet_hook": lambda g: slow_reference.fine(g, spec["My"], spec["Mx"], spec["K"])}
    if name == "threshold":
        return {"dnet_hook": lambda g: slow_reference.threshold(g, spec["tau"])}
    if spec.get("target") == "dh":
        return {"dh_hook": lambda g: slow_reference.meprop(g, spec["keep"])}
    return {"dnet_hook": lambda g: slow_reference.meprop(g, spec["keep"])}


@pytest.mark.parametrize("spec", [
    {"name": "coarse", "P": 2, "R": 4, "S": 2},
    {"name": "coarse", "P": 1, "R": 8, "S": 6},
    {"name": "fine", "My": 2, "Mx": 4, "K": 1},
    {"name": "fine", "My": 1, "Mx": 2, "K": 3},
    {"name": "meprop", "keep": 0.25, "target": "dnet"},
    {"name": "meprop", "keep": 0.5, "target": "dh"},
    {"name": "threshold", "tau": 0.05},
], ids=lambda spec: "-".join(f"{v}" for v in spec.values()))
@pytest.mark.parametrize("bias", [True, False])
def test_sparse_gradients_equal_a_slow_per_step_loop(spec, bias):
    steps, batch, input_size, hidden_size, num_layers = 4, 4, 5, 8, 2
    _, ours = _pair(input_size, hidden_size, num_layers, bias)
    ours.sparsifier = spec
    x, h0, c0 = _inputs(steps, batch, input_size, hidden_size, num_layers)
    our_out, our_grads = _loss_and_grads(ours, x, h0, c0)

    weights = [tuple(getattr(ours, f"{kind}_l{layer}") if bias or kind.startswith("weight")
                     else None for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
               for layer in range(num_layers)]
    output, h_n, c_n = slow_reference.lstm_with_hooks(x, h0, c0, weights, **_slow_hooks(spec))
    generator = torch.Generator().manual_seed(2)
    loss = ((output * torch.randn(output.shape, generator=generator, dtype=output.dtype)).sum()
            + 0.3 * h_n.sum() + 0.7 * c_n.sum())
    slow_grads = torch.autograd.grad(loss, [x, h0, c0, *ours.parameters()])
    for expected, actual in zip((output, h_n, c_n) + slow_grads, our_out + our_grads):
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-10)


def test_sparse_backward_changes_gradients():
    _, ours = _pair(5, 8, 1, True)
    x, h0, c0 = _inputs(4, 4, 5, 8, 1)
    _, dense_grads = _loss_and_grads(ours, x, h0, c0)
    ours.sparsifier = {"name": "coarse", "P": 2, "R": 4, "S": 2}
    _, sparse_grads = _loss_and_grads(ours, x, h0, c0)
    assert not torch.allclose(dense_grads[3], sparse_grads[3])


def test_threshold_zero_equals_dense():
    _, ours = _pair(5, 8, 2, True)
    x, h0, c0 = _inputs(4, 4, 5, 8, 2)
    _, dense_grads = _loss_and_grads(ours, x, h0, c0)
    ours.sparsifier = {"name": "threshold", "tau": 0.0}
    _, threshold_grads = _loss_and_grads(ours, x, h0, c0)
    for expected, actual in zip(dense_grads, threshold_grads):
        assert torch.equal(expected, actual)


def test_swapping_the_sparsifier_between_steps_keeps_the_weights():
    _, ours = _pair(5, 8, 2, True)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    ours.sparsifier = {"name": "fine", "My": 2, "K": 1}
    ours.sparsifier = sparsify.build({"name": "coarse", "R": 8, "S": 4})
    assert ours.sparsifier.spec == {"name": "coarse", "P": 4, "R": 8, "S": 4}
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())


def test_gradient_stats_are_per_layer_and_reset_after_reading():
    _, ours = _pair(5, 8, 2, True)
    ours.sparsifier = {"name": "coarse", "P": 4, "R": 8, "S": 6}
    x, h0, c0 = _inputs(1, 4, 5, 8, 2)  # one step: one call per layer, so no averaging
    _loss_and_grads(ours, x, h0, c0)
    stats = ours.gradient_stats()
    assert len(stats) == 2
    for layer in stats:
        assert layer["sparsity"] == pytest.approx(0.75)
        assert 0 < layer["kept_energy"] < 1
        assert layer["cosine"] == pytest.approx(layer["kept_energy"] ** 0.5, rel=1e-5)
    assert ours.gradient_stats() == [{}, {}]


def test_each_layer_gets_its_own_sparsifier():
    _, ours = _pair(5, 8, 2, True)
    shared = sparsify.build({"name": "meprop", "keep": 0.5})
    ours.sparsifier = shared
    x, h0, c0 = _inputs(3, 4, 5, 8, 2)
    _loss_and_grads(ours, x, h0, c0)
    assert shared.stats() == {}


def test_shape_rule_violation_names_the_parameter_at_first_call():
    _, ours = _pair(5, 8, 1, True)
    ours.sparsifier = {"name": "coarse", "P": 4, "R": 16, "S": 8}
    x, h0, c0 = _inputs(3, 4, 5, 8, 1)
    with pytest.raises(ConfigError, match=r"method\.R: 4H \(32\) must be divisible by P\*R"):
        _loss_and_grads(ours, x, h0, c0)


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError, match="backend"):
        LSTM(3, 4, backend="numpy")


def test_cupy_backend_on_cpu_input_says_what_it_needs():
    ours = LSTM(3, 4, backend="cupy")
    with pytest.raises(ConfigError, match="cupy needs a CUDA tensor"):
        ours(torch.randn(2, 1, 3))


def test_float32_training_step_runs_and_gives_finite_gradients():
    ours = LSTM(6, 16, num_layers=2, sparsifier={"name": "fine", "My": 8, "K": 1})
    output, _ = ours(torch.randn(5, 16, 6))
    output.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in ours.parameters())


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_without_gradients_equals_the_training_forward(num_layers, bias):
    _, ours = _pair(6, 8, num_layers, bias)
    ours.sparsifier = {"name": "coarse", "R": 4, "S": 2}  # acts on backward only
    x, h0, c0 = (t.detach() for t in _inputs(7, 3, 6, 8, num_layers))
    output, (h_n, c_n) = ours(x, (h0, c0))
    with torch.no_grad():
        fast_output, (fast_h, fast_c) = ours(x, (h0, c0))
    torch.testing.assert_close(fast_output, output, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast_h, h_n, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast_c, c_n, rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_forward_without_gradients_on_a_gpu_follows_weight_updates():
    torch.manual_seed(0)
    ours = LSTM(8, 32, num_layers=2).cuda()
    x = torch.randn(5, 4, 8, device="cuda")
    for _ in range(2):  # the second pass after an in-place update, as an optimizer step does
        with torch.no_grad():
            fast, (fast_h, fast_c) = ours(x)
        slow, (slow_h, slow_c) = ours(x)
        # cuDNN may run float32 as tf32: compare to the tf32 tolerance
        torch.testing.assert_close(fast, slow, rtol=3e-3, atol=1e-3)
        torch.testing.assert_close(fast_c, slow_c, rtol=3e-3, atol=1e-3)
        with torch.no_grad():
            ours.weight_hh_l1.mul_(1.5)
