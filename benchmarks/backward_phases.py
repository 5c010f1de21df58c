"""Where one autograd backward of our LSTM spends its time around the graph replay.

CUDA events and host clocks are taken at points of `torch.autograd.backward` (one layer): the
call, the entry of the layer's backward, around each multi-tensor copy in and out of the
graph and around the graph replay, the layer backward's return, and the end (cuDNN: the call,
its backward node's entry, the end). While the GPU is idle, an event's time is when the
host reached it, so a gap in device time that matches the host's gap is host latency the
GPU waited through; a larger one is device work queued there (copies, accumulation).

Usage: python3 benchmarks/backward_phases.py [shape ...]   (default: large xl; bfloat16,
dense and coarse 50%, and cuDNN's whole backward beside them). Writes $OUT or
benchmarks/results/backward_phases.json.
"""
import dataclasses
import json
import os
import statistics
import sys
import time

import torch

from sparsetrain.bench.measure import Configuration, median_cuda_ms, parse_shape
from sparsetrain.kernels import lstm_layer

POINTS = ("call", "layer backward", "copy in", "copied in", "replay", "replayed", "copy out",
          "copied out", "layer returned", "end")
marks: dict[str, tuple[torch.cuda.Event, float]] = {}


def mark(name: str) -> None:
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    marks[name] = (event, time.perf_counter())


def _patch() -> None:
    layer_backward = lstm_layer.CupyLSTMLayer.backward
    graph_replay = torch.cuda.CUDAGraph.replay

    def backward(ctx, *grads):
        mark("layer backward")
        result = layer_backward(ctx, *grads)
        mark("layer returned")
        return result

    def replay(self):
        mark("replay")
        graph_replay(self)
        mark("replayed")

    def foreach_copy(targets, sources):
        name = "copy in" if "replayed" not in marks else "copy out"
        mark(name)
        foreach_copy_(targets, sources)
        mark(name.replace("copy", "copied"))

    foreach_copy_ = torch._foreach_copy_
    lstm_layer.CupyLSTMLayer.backward = staticmethod(backward)
    torch.cuda.CUDAGraph.replay = replay
    torch._foreach_copy_ = foreach_copy


def phases(setup: Configuration, repeats: int = 30) -> dict:
    gaps: dict[str, list[tuple[float, float]]] = {}
    for _ in range(5):
        setup.backward()
    for _ in range(repeats):
        torch.cuda.synchronize()
        marks.clear()
        mark("call")
        setup.backward()
        mark("end")
        torch.cuda.synchronize()
        points = [point for point in POINTS if point in marks]
        for before, after in zip(points, points[1:]):
            (start, host_start), (stop, host_stop) = marks[before], marks[after]
            gaps.setdefault(f"{before} -> {after}", []).append(
                (start.elapsed_time(stop), (host_stop - host_start) * 1000))
    return {name: {"device_ms": statistics.median(d for d, _ in values),
                   "host_ms": statistics.median(h for _, h in values)}
            for name, values in gaps.items()}


def copy_costs(shape) -> dict:
    """Host milliseconds to enqueue the backward's input copies (x, h0, both weights,
    d_output): as one multi-tensor copy, one copy_ each, and d_output's copy_ alone."""
    rows, hidden = shape.steps * shape.batch, shape.hidden
    sizes = [(rows, hidden), (shape.batch, hidden), (4 * hidden, hidden), (4 * hidden, hidden),
             (rows, hidden)]
    sources = [torch.randn(size, device="cuda", dtype=torch.bfloat16) for size in sizes]
    targets = [torch.empty_like(source) for source in sources]
    ways = {"foreach": lambda: torch._foreach_copy_(targets, sources),
            "copy_ each": lambda: [t.copy_(s) for t, s in zip(targets, sources)],
            "d_output copy_": lambda: targets[-1].copy_(sources[-1])}
    costs = {}
    for way, work in ways.items():
        times = []
        for _ in range(25):
            torch.cuda.synchronize()
            start = time.perf_counter()
            work()
            times.append((time.perf_counter() - start) * 1000)
        costs[way] = statistics.median(times[5:])
        print(f"  host ms to enqueue the input copies, {way}: {costs[way]:.3f}")
    return costs


def timed_row(name: str, method: str, setup: Configuration) -> dict:
    row = {"shape": name, "method": method, "phases": phases(setup),
           "backward_ms": median_cuda_ms(setup.backward, 3, 20)}
    print(f"{name} bf16 {method}: backward {row['backward_ms']:.3f} ms")
    for gap, times in row["phases"].items():
        print(f"  {gap:34s} device {times['device_ms']:.3f} ms, host {times['host_ms']:.3f} ms")
    return row


def main() -> None:
    _patch()
    names = [a for a in sys.argv[1:]] or ["large", "xl"]
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    for name in names:
        shape = dataclasses.replace(parse_shape(name), layers=1)
        for method in ("dense", "coarse"):
            setup = Configuration(method, 0.5, shape, torch.bfloat16)
            results["rows"].append(timed_row(name, method, setup))
        cudnn = Configuration("cudnn", 0.0, shape, torch.bfloat16)
        cudnn.output.grad_fn.register_prehook(lambda grads: mark("layer backward"))
        results["rows"].append(timed_row(name, "cudnn", cudnn))
        results.setdefault("copies", {})[name] = copy_costs(shape)
    target = os.path.join(os.environ.get("OUT", "benchmarks/results"), "backward_phases.json")
    with open(target, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
