"""Which graph buffers a backward may overwrite: the storage counts behind
graphs._Captured.held, on CPU tensors (the counting does not depend on the device)."""

import dataclasses

import torch

from sparsetrain.kernels import graphs


@dataclasses.dataclass
class Outputs:
    d_x: torch.Tensor
    d_w_ih: torch.Tensor
    step_summary: torch.Tensor | None


def captured(step_summary=True):
    outputs = Outputs(torch.randn(6, 4), torch.randn(8, 4),
                      torch.randn(3) if step_summary else None)
    return graphs._Captured(graph=None, inputs=None, outputs=outputs)


def test_a_graph_never_handed_out_is_not_held():
    assert not captured().held()


def test_handed_out_gradients_hold_the_graph_while_they_live():
    graph = captured()
    handed = graph.hand_out()
    assert graph.held()
    del handed
    assert not graph.held()


def test_a_view_of_a_handed_out_gradient_holds_the_graph():
    graph = captured()
    view = graph.hand_out().d_x.reshape(-1)[2:]
    assert graph.held()
    del view
    assert not graph.held()


def test_handed_out_gradients_are_the_graphs_buffers():
    graph = captured()
    handed = graph.hand_out()
    for name in ("d_x", "d_w_ih", "step_summary"):
        assert getattr(handed, name).data_ptr() == getattr(graph.outputs, name).data_ptr()


def test_a_step_summary_handed_out_holds_the_graph():
    graph = captured()
    summary = graph.hand_out().step_summary
    assert graph.held()
    del summary
    assert not graph.held()


def test_gradients_without_a_step_summary_are_handed_out():
    graph = captured(step_summary=False)  # dense's: every slice kept, nothing to summarize
    handed = graph.hand_out()
    assert handed.step_summary is None
    assert graph.held()
