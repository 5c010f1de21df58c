"""Replays a layer's forward, and its whole backward, as one CUDA graph each, so launch
overhead does not eat the gain.

The first call at a given (pass, method, shapes, dtype) runs once to warm up (module loads,
cuBLAS handles), then is captured into a graph over private copies of its inputs. Every call
copies its inputs into those copies and replays the graph. The copies are part of the measured
time. Set SPARSETRAIN_CUDA_GRAPHS=0 to run eagerly (one launch at a time from Python).

The forward graph reads the weights where they are (the graph is keyed by their addresses):
parameters keep theirs from step to step, and autograd refuses a backward whose saved weights
were changed in place. What the backward reads of the forward, its inputs (x, weights) and
its hidden states, cells and gates, is handed over instead of copied (`Handoff`): each layer
has its own forward graph, and the layer's backward graph reads that graph's buffers, so only
d_output is copied in. The outputs are copied out only when another forward of the same
layer would overwrite them while the first one's backward is still to come (two calls of one
layer before their backwards, or a graph retained for another backward), and copied back,
with the inputs, when that backward runs.

The forward's output is copied out of its graph. The backward's gradients are not: they are
handed out in the graph's buffers, and a graph is replayed only while no tensor but the
graph's own shares those buffers' storage (the count torch's own cudagraph trees read, in
torch/_inductor/cudagraph_trees.py). While someone holds them (a leaf's .grad that autograd
took over, until zero_grad sets it to None; gradients a caller keeps), the backward replays the
next of GRAPHS_PER_BACKWARD graphs of its key, captured when first needed; with all of them
held it runs eagerly, into fresh tensors.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import os
import weakref
from collections import OrderedDict
from typing import Any, Callable

import torch

from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import forward as forward_pass
from sparsetrain.kernels._loader import copy_device
from sparsetrain.sparsify import Sparsifier, build

CACHED_GRAPHS = 16
_graphs: "OrderedDict[tuple, _Captured]" = OrderedDict()
# ForwardInputs' and ForwardState's fields the backward reads (LayerState's of the same names)
HANDED_INPUTS = ("x", "w_ih", "w_hh")
HANDED_OUTPUTS = ("hidden", "cells", "gates")
HANDED = HANDED_INPUTS + HANDED_OUTPUTS
IN_PLACE = ("w_ih", "w_hh")  # ForwardInputs' fields the forward graph reads where they are
# graphs per backward key, each handing out its own gradients' buffers
GRAPHS_PER_BACKWARD = 2
_serials = itertools.count()


def graphs_enabled() -> bool:
    return os.environ.get("SPARSETRAIN_CUDA_GRAPHS", "1") != "0"


@dataclasses.dataclass(eq=False)
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: Any    # the dataclass the graph reads
    outputs: Any   # the dataclass the graph writes
    serial: int = dataclasses.field(default_factory=lambda: next(_serials))
    holder: Any = None  # forward graphs: weakref to the Handoff whose values the outputs hold
    # backward graphs, once first handed out: each handed output's storage (its address, as
    # torch's use count takes it) and that storage's use count then (the graph's own tensors)
    handed_storages: tuple[int, ...] = ()
    handed_uses: tuple[int, ...] | None = None

    def live_holder(self) -> "Handoff | None":
        """The Handoff whose values the outputs hold, while a backward can still read them."""
        holder = self.holder() if self.holder is not None else None
        return holder if holder is not None and holder.needed() else None

    def held(self) -> bool:
        """Whether a tensor handed out still shares the storage of one of the outputs."""
        return self.handed_uses is not None and any(
            torch._C._storage_Use_Count(storage) != uses
            for storage, uses in zip(self.handed_storages, self.handed_uses))

    def hand_out(self) -> Any:
        """The outputs, as tensors of their own over the graph's buffers. Only while not
        held()."""
        handed = dict(_tensors(self.outputs))
        if self.handed_uses is None:
            self.handed_storages = tuple(tensor.untyped_storage()._cdata
                                         for tensor in handed.values())
            self.handed_uses = tuple(map(torch._C._storage_Use_Count, self.handed_storages))
        return dataclasses.replace(
            self.outputs, **{name: tensor.detach() for name, tensor in handed.items()})


class Handoff:
    """One forward call's inputs and outputs, for its backward. They stay in the forward graph's
    buffers while this is the last forward of the graph (it "holds" them); the next forward of
    the graph first copies the outputs out, unless no backward can read them any more, and
    `tensors` copies them back with the inputs (the caller's own, which autograd saves)."""

    def __init__(self, captured: _Captured | None, inputs: Any, state: Any = None) -> None:
        self.captured = captured
        self.inputs = {name: getattr(inputs, name) for name in HANDED_INPUTS}
        self.moved: dict[str, torch.Tensor] | None = (
            None if captured is not None
            else {name: getattr(state, name) for name in HANDED_OUTPUTS})
        self._sentinel: Callable[[], Any] = lambda: True

    def needed_while(self, sentinel: torch.Tensor) -> None:
        """The values are needed while `sentinel` lives: saved for the backward, autograd frees
        it once the backward has run without retain_graph (or with the graph)."""
        self._sentinel = weakref.ref(sentinel)

    def needed(self) -> bool:
        return self._sentinel() is not None

    def move_out(self) -> None:
        self.moved = {name: getattr(self.captured.outputs, name).clone()
                      for name in HANDED_OUTPUTS}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The values, in the forward graph's buffers (the eager pass: its own tensors)."""
        if self.captured is None:
            return {**self.inputs, **self.moved}
        holder = self.captured.live_holder()
        if holder is not self:
            if holder is not None:
                holder.move_out()
            _copy_into(self.captured.inputs, self.inputs)
            _copy_into(self.captured.outputs, self.moved)
            self.moved = None
            self.captured.holder = weakref.ref(self)
        return {**{name: getattr(self.captured.inputs, name) for name in HANDED_INPUTS},
                **{name: getattr(self.captured.outputs, name) for name in HANDED_OUTPUTS}}


def _describe(record: Any) -> tuple:
    """What a graph of record's fields depends on: shapes, dtypes, devices."""
    return tuple((name, None if (t := getattr(record, name)) is None
                  else (tuple(t.shape), t.dtype, t.device))
                 for name in _field_names(type(record)))


@functools.cache
def _field_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record_type))


def _copy(record: Any, shared: tuple[str, ...]) -> Any:
    """record with clones of its tensors, but for the `shared` fields."""
    return dataclasses.replace(record, **{name: tensor.clone()
                                          for name, tensor in _tensors(record)
                                          if name not in shared})


def _tensors(record: Any) -> list[tuple[str, torch.Tensor]]:
    return [(name, tensor) for name in _field_names(type(record))
            if isinstance(tensor := getattr(record, name), torch.Tensor)]


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


def _capture(function: Callable[[Any], Any], inputs: Any, shared: tuple[str, ...]) -> _Captured:
    """The graph of function over private copies of inputs, but for the `shared` fields, which
    it reads where they are (the weights; another graph's buffers)."""
    inputs = _copy(inputs, shared)
    graph, outputs = capture(lambda: function(inputs))
    # no garbage of the capture may still hold the outputs: it would be taken for a caller's
    # hold on a handed-out gradient, or its collection hide one
    gc.collect()
    return _Captured(graph, inputs, outputs)


def _replay(key: tuple, function: Callable[[Any], Any], inputs: Any,
            shared: tuple[str, ...] = ()) -> _Captured:
    """Copies inputs into the graph cached at `key` (captured at the first call) and replays
    it; the shared fields are read where they are, and a tensor that already is the graph's
    own is not copied."""
    captured = _graphs.get(key)
    if captured is None:
        captured = _capture(function, inputs, shared)
        _graphs[key] = captured
        while len(_graphs) > CACHED_GRAPHS:
            _graphs.popitem(last=False)
    _graphs.move_to_end(key)
    _copy_into(captured.inputs, {name: tensor for name, tensor in _tensors(inputs)
                                 if name not in shared})
    captured.graph.replay()
    return captured


def _copy_into(record: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Copies tensors into record's fields of the same names, but for those already there."""
    pairs = [(getattr(record, name), tensor) for name, tensor in tensors.items()
             if getattr(record, name).data_ptr() != tensor.data_ptr()]
    if len(pairs) == 1:
        target, source = pairs[0]
        if (source.dtype == target.dtype and source.is_contiguous()
                and target.is_contiguous()):
            copy_device(target, source)  # the usual backward: d_output alone
        else:
            target.copy_(source)
    elif pairs:  # one multi-tensor copy: per-tensor copies cost more host time than device time
        torch._foreach_copy_([target for target, _ in pairs], [source for _, source in pairs])


def _replay_handing_out(key: tuple, function: Callable[[Any], Any], inputs: Any,
                        shared: tuple[str, ...]) -> Any:
    """function(inputs) as the first of the GRAPHS_PER_BACKWARD graphs at (*key, i) whose outputs
    nobody holds (captured when first needed), its outputs handed out; with all of them held,
    run eagerly."""
    for instance in range(GRAPHS_PER_BACKWARD):
        captured = _graphs.get((*key, instance))
        if captured is None or not captured.held():
            return _replay((*key, instance), function, inputs, shared).hand_out()
    return function(inputs)


def forward(inputs: forward_pass.ForwardInputs,
            weights: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Handoff]:
    """The layer's forward: its output (a fresh tensor), and its inputs, hidden states, cells
    and gates for its backward. Each layer (its `weights`, the caller's w_ih and w_hh) has a graph
    of its own, so that layers of one shape do not take each other's values out of the
    buffers; the graph reads them where they are when they are inputs' own (contiguous)."""
    if not graphs_enabled():
        state = forward_pass.run(inputs)
        return state.output, Handoff(None, inputs, state)
    key = ("forward", _describe(inputs), *(weight.data_ptr() for weight in weights))
    in_place = IN_PLACE if all(getattr(inputs, name) is weight
                               for name, weight in zip(IN_PLACE, weights)) else ()
    held = _graphs.get(key)
    holder = held.live_holder() if held is not None else None
    if holder is not None:  # a backward may still read them: out of this forward's way
        holder.move_out()
    captured = _replay(key, forward_pass.run, inputs, in_place)
    handoff = Handoff(captured, inputs)
    captured.holder = weakref.ref(handoff)
    return captured.outputs.output.clone(), handoff


def _backward_plan(spec: dict, state: plans.LayerState) -> plans.LayerGrads:
    # Warm-up, capture and the eager run beside held graphs: the plan's statistics go to a
    # sparsifier of its own (run records the step summary it returns).
    return plans.run(build(spec), state)


def run(sparsifier: Sparsifier, state: plans.LayerState,
        handoff: Handoff | None = None) -> plans.LayerGrads:
    """The layer's gradients (in a graph, its buffers: see the module's doc) and the
    sparsifier's statistics recorded. With the forward's handoff, state's fields named in
    HANDED must be its `tensors()` (in a graph, the forward graph's buffers, which the backward
    graph reads where they are)."""
    if not graphs_enabled():
        grads = plans.run(sparsifier, state)
    else:
        spec = tuple(sorted(sparsifier.spec.items()))
        if handoff is not None and handoff.captured is not None:
            # The shared fields are the forward graph's, and its serial says which; it also
            # fixes d_output's shape and dtype (autograd hands it in the output's) and those of
            # the last step's gradients, where they come.
            shared = HANDED
            key = ("backward", spec, handoff.captured.serial, state.d_h_last is None,
                   state.d_c_last is None)
        else:
            shared, key = (), ("backward", spec, _describe(state))
        grads = _replay_handing_out(
            key, lambda inputs: _backward_plan(sparsifier.spec, inputs), state, shared)
    plans.record_stats(sparsifier, grads)
    return grads
