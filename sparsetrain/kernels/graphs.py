"""Replays a layer's whole backward as one CUDA graph, so launch overhead does not eat the gain.

The first backward at a given (method, shapes, dtype) runs once to warm up (module loads,
cuBLAS handles), then is captured into a graph over private copies of its inputs. Every call
copies the saved forward state into those copies, replays the graph and clones the gradients
out. The copies are part of the measured backward time. Set SPARSETRAIN_CUDA_GRAPHS=0 to run
eagerly (one launch at a time from Python).
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from typing import Any

import torch

from sparsetrain.kernels import backward as plans
from sparsetrain.sparsify import Sparsifier, build

CACHED_GRAPHS = 8
_graphs: "OrderedDict[tuple, _Captured]" = OrderedDict()


def graphs_enabled() -> bool:
    return os.environ.get("SPARSETRAIN_CUDA_GRAPHS", "1") != "0"


@dataclasses.dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: plans.LayerState
    grads: plans.LayerGrads


def _key(sparsifier: Sparsifier, state: plans.LayerState) -> tuple:
    shapes = tuple((f.name, _describe(getattr(state, f.name))) for f in dataclasses.fields(state))
    return (tuple(sorted(sparsifier.spec.items())), shapes)


def _describe(tensor: Any) -> Any:
    return None if tensor is None else (tuple(tensor.shape), tensor.dtype, str(tensor.device))


def _copy_state(state: plans.LayerState) -> plans.LayerState:
    return plans.LayerState(**{f.name: (None if getattr(state, f.name) is None
                                         else getattr(state, f.name).clone())
                               for f in dataclasses.fields(state)})


def _capture(sparsifier: Sparsifier, state: plans.LayerState) -> _Captured:
    inputs = _copy_state(state)
    scratch = build(sparsifier.spec)  # the warm-up's and capture's statistics go nowhere
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        plans.run(scratch, inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        grads = plans.run(scratch, inputs)
    return _Captured(graph, inputs, grads)


def _tensors(record: Any) -> list[tuple[str, torch.Tensor]]:
    return [(f.name, getattr(record, f.name)) for f in dataclasses.fields(record)
            if isinstance(getattr(record, f.name), torch.Tensor)]


def run(sparsifier: Sparsifier, state: plans.LayerState) -> plans.LayerGrads:
    """The layer's gradients (fresh tensors) and the sparsifier's statistics recorded."""
    if not graphs_enabled():
        grads = plans.run(sparsifier, state)
        plans.record_stats(sparsifier, grads)
        return grads
    key = _key(sparsifier, state)
    captured = _graphs.get(key)
    if captured is None:
        captured = _capture(sparsifier, state)
        _graphs[key] = captured
        while len(_graphs) > CACHED_GRAPHS:
            _graphs.popitem(last=False)
    _graphs.move_to_end(key)
    # One multi-tensor copy each way: per-tensor copies cost more host time than device time.
    sources = _tensors(state)
    torch._foreach_copy_([getattr(captured.inputs, name) for name, _ in sources],
                         [tensor for _, tensor in sources])
    captured.graph.replay()
    outputs = _tensors(captured.grads)
    fresh = [torch.empty_like(tensor) for _, tensor in outputs]
    torch._foreach_copy_(fresh, [tensor for _, tensor in outputs])
    grads = dataclasses.replace(captured.grads, **{name: tensor for (name, _), tensor
                                                   in zip(outputs, fresh)})
    plans.record_stats(sparsifier, grads)
    return grads
