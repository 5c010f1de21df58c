"""Host microseconds of single device calls made inside our layer backward (the autograd
engine's device thread, where the backward runs) and from the main thread: the d_output copy
into a buffer (torch copy_, and the runtime's memcpyAsync through CuPy), an int64 fill_, one
of our kernel launches, and unpacking the saved tensors. Median over calls.

Usage: python3 benchmarks/host_costs.py [shape]   (default: xl; bfloat16 coarse, one layer)
"""
import dataclasses
import statistics
import sys
import time

import torch

from sparsetrain.bench.measure import Configuration, parse_shape
from sparsetrain.kernels import lstm_layer
from sparsetrain.kernels._loader import copy_device
from sparsetrain.kernels.transpose import transposed

CALLS = 40


def probes(d_output: torch.Tensor, state: dict) -> dict:
    buffer, word = state["buffer"], state["word"]
    small = state["small"]
    work = {
        "copy_ d_output": lambda: buffer.copy_(d_output),
        "memcpyAsync d_output (copy_device)": lambda: copy_device(buffer, d_output),
        "int64 fill_": lambda: word.fill_(d_output.data_ptr()),
        "our launch (transposed 32x32)": lambda: transposed(small),
        "torch.cuda.current_stream()": lambda: torch.cuda.current_stream(),
    }
    times = {}
    for name, call in work.items():
        start = time.perf_counter_ns()
        call()
        times[name] = (time.perf_counter_ns() - start) / 1e3
    return times


def main() -> None:
    shape = dataclasses.replace(parse_shape(sys.argv[1] if len(sys.argv) > 1 else "xl"),
                                layers=1)
    setup = Configuration("coarse", 0.5, shape, torch.bfloat16)
    state = {"buffer": torch.empty_like(setup.grad),
             "word": torch.zeros(1, device="cuda", dtype=torch.int64),
             "small": torch.randn(32, 32, device="cuda")}
    inside: list[dict] = []
    layer_backward = lstm_layer.CupyLSTMLayer.backward

    def probed(ctx, d_output, *rest):
        start = time.perf_counter_ns()
        ctx.saved_tensors
        unpacked = (time.perf_counter_ns() - start) / 1e3
        inside.append({**probes(d_output, state), "ctx.saved_tensors": unpacked})
        return layer_backward(ctx, d_output, *rest)

    for _ in range(3):
        setup.backward()
    lstm_layer.CupyLSTMLayer.backward = staticmethod(probed)
    outside: list[dict] = []
    for _ in range(CALLS):
        torch.cuda.synchronize()
        setup.backward()
        torch.cuda.synchronize()
        outside.append(probes(setup.grad, state))
    print(f"{shape.name}: host us per call, median of {CALLS} "
          f"(inside the layer backward | main thread)")
    for name in inside[0]:
        mine = statistics.median(row[name] for row in inside[3:])
        main_thread = (statistics.median(row[name] for row in outside[3:])
                       if name in outside[0] else float("nan"))
        print(f"  {name:32s} {mine:8.1f} | {main_thread:8.1f}")


if __name__ == "__main__":
    main()
