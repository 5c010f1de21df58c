"""Replays a layer's forward, and its whole backward, as one CUDA graph each, so launch
overhead does not eat the gain.

The first call at a given (pass, method, shapes, dtype) runs once to warm up (module loads,
cuBLAS handles), then is captured into a graph over private copies of its inputs. Every call
copies its inputs into those copies, replays the graph and copies the results out into fresh
tensors. The copies are part of the measured time. Set SPARSETRAIN_CUDA_GRAPHS=0 to run
eagerly (one launch at a time from Python).
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from typing import Any, Callable

import torch

from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import forward as forward_pass
from sparsetrain.sparsify import Sparsifier, build

CACHED_GRAPHS = 8
_graphs: "OrderedDict[tuple, _Captured]" = OrderedDict()


def graphs_enabled() -> bool:
    return os.environ.get("SPARSETRAIN_CUDA_GRAPHS", "1") != "0"


@dataclasses.dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: Any    # the dataclass the graph reads
    outputs: Any   # the dataclass the graph writes


def _describe(record: Any) -> tuple:
    return tuple((f.name, None if (t := getattr(record, f.name)) is None
                  else (tuple(t.shape), t.dtype, str(t.device)))
                 for f in dataclasses.fields(record))


def _copy(record: Any) -> Any:
    return dataclasses.replace(record, **{name: tensor.clone()
                                          for name, tensor in _tensors(record)})


def _tensors(record: Any) -> list[tuple[str, torch.Tensor]]:
    return [(f.name, getattr(record, f.name)) for f in dataclasses.fields(record)
            if isinstance(getattr(record, f.name), torch.Tensor)]


def capture(work: Callable[[], Any]) -> tuple[torch.cuda.CUDAGraph, Any]:
    """work() run once to warm up (on a side stream, as capture needs), then captured: the
    graph and what the captured call returned."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        work()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = work()
    return graph, result


def _capture(function: Callable[[Any], Any], inputs: Any) -> _Captured:
    inputs = _copy(inputs)
    graph, outputs = capture(lambda: function(inputs))
    return _Captured(graph, inputs, outputs)


def replay(key: tuple, function: Callable[[Any], Any], inputs: Any) -> Any:
    """function(inputs), a dataclass of tensors to one of tensors, run as the graph cached at
    `key` (captured at the first call); the result's tensors are fresh."""
    captured = _graphs.get(key)
    if captured is None:
        captured = _capture(function, inputs)
        _graphs[key] = captured
        while len(_graphs) > CACHED_GRAPHS:
            _graphs.popitem(last=False)
    _graphs.move_to_end(key)
    # One multi-tensor copy each way: per-tensor copies cost more host time than device time.
    sources = _tensors(inputs)
    torch._foreach_copy_([getattr(captured.inputs, name) for name, _ in sources],
                         [tensor for _, tensor in sources])
    captured.graph.replay()
    results = _tensors(captured.outputs)
    fresh = [torch.empty_like(tensor) for _, tensor in results]
    torch._foreach_copy_(fresh, [tensor for _, tensor in results])
    return dataclasses.replace(captured.outputs, **{name: tensor for (name, _), tensor
                                                    in zip(results, fresh)})


def forward(inputs: forward_pass.ForwardInputs) -> forward_pass.ForwardState:
    """The layer's forward: output, cells and gates (fresh tensors)."""
    if not graphs_enabled():
        return forward_pass.run(inputs)
    return replay(("forward", _describe(inputs)), forward_pass.run, inputs)


def _backward_plan(spec: dict, state: plans.LayerState) -> plans.LayerGrads:
    # Warm-up and capture only: their statistics go to a sparsifier of their own.
    return plans.run(build(spec), state)


def run(sparsifier: Sparsifier, state: plans.LayerState) -> plans.LayerGrads:
    """The layer's gradients (fresh tensors) and the sparsifier's statistics recorded."""
    if not graphs_enabled():
        grads = plans.run(sparsifier, state)
    else:
        key = ("backward", tuple(sorted(sparsifier.spec.items())), _describe(state))
        grads = replay(key, lambda inputs: _backward_plan(sparsifier.spec, inputs), state)
    plans.record_stats(sparsifier, grads)
    return grads
