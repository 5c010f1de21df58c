"""Host time of our layer backward, piece by piece: each traced function's start and end
relative to the layer backward's entry (host clock, median over calls; a function called
twice a call, as `_Captured.held` where the first graph is held, gives the median of both),
called through torch.autograd.backward as the bench does (one layer, bfloat16). The GPU
idles from the call until the graph replay is enqueued, so everything before
`CUDAGraph.replay` adds to the measured backward.

Usage: python3 benchmarks/host_timeline.py [shape] [method]   (default: xl coarse)
"""
import dataclasses
import statistics
import sys
import time

import torch

from sparsetrain.bench.measure import Configuration, parse_shape
from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import graphs, lstm_layer

CALLS = 60
spans: list[tuple[str, int, int]] = []


def traced(name, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            spans.append((name, start, time.perf_counter_ns()))
    return wrapper


def main() -> None:
    shape = dataclasses.replace(parse_shape(sys.argv[1] if len(sys.argv) > 1 else "xl"),
                                layers=1)
    method = sys.argv[2] if len(sys.argv) > 2 else "coarse"
    setup = Configuration(method, 0.5, shape, torch.bfloat16)
    for _ in range(5):
        setup.backward()
    lstm_layer.CupyLSTMLayer.backward = staticmethod(
        traced("layer backward", lstm_layer.CupyLSTMLayer.backward))
    graphs.Handoff.tensors = traced("Handoff.tensors", graphs.Handoff.tensors)
    graphs._describe = traced("_describe", graphs._describe)
    graphs._copy_into = traced("_copy_into (d_output copy_)", graphs._copy_into)
    torch.cuda.CUDAGraph.replay = traced("CUDAGraph.replay", torch.cuda.CUDAGraph.replay)
    graphs._Captured.held = traced("_Captured.held", graphs._Captured.held)
    graphs._Captured.hand_out = traced("_Captured.hand_out", graphs._Captured.hand_out)
    plans.record_stats = traced("record_stats", plans.record_stats)
    graphs.run = traced("graphs.run", graphs.run)
    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(CALLS):
        torch.cuda.synchronize()
        spans.clear()
        call = time.perf_counter_ns()
        setup.backward()
        end = time.perf_counter_ns()
        torch.cuda.synchronize()
        entry = next(start for name, start, _ in spans if name == "layer backward")
        rows.setdefault("torch.autograd.backward call", []).append((0.0, (end - call) / 1e3))
        rows.setdefault("(engine: call -> layer backward)", []).append(
            (0.0, (entry - call) / 1e3))
        for name, start, stop in spans:
            rows.setdefault(name, []).append(((start - entry) / 1e3, (stop - entry) / 1e3))
    print(f"{shape.name} bf16 {method}: host us from the layer backward's entry (median of "
          f"{CALLS})")
    for name, values in sorted(rows.items(), key=lambda item: statistics.median(
            start for start, _ in item[1])):
        start = statistics.median(s for s, _ in values)
        stop = statistics.median(e for _, e in values)
        print(f"  {name:34s} {start:8.1f} -> {stop:8.1f}  ({stop - start:6.1f})")


if __name__ == "__main__":
    main()
