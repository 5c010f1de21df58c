"""What a backward costs beyond its graph replay: the same layer timed as the whole autograd
backward, as graphs.run (input copies, replay, gradient copies, statistics), and as the
replay alone (CUDA events, medians). For where host time goes, wrap `backward` in
torch.profiler with ProfilerActivity.CPU.

Usage: python3 benchmarks/overhead.py [shape] [dtype]   (default: large bfloat16)
"""
import sys

import torch

from sparsetrain.bench.measure import median_cuda_ms, parse_shape
from sparsetrain.kernels import graphs
from sparsetrain.nn import LSTM

shape = parse_shape(sys.argv[1] if len(sys.argv) > 1 else "large")
dtype = getattr(torch, sys.argv[2] if len(sys.argv) > 2 else "bfloat16")
model = LSTM(shape.hidden, shape.hidden, 1, sparsifier={"name": "dense"},
             backend="cupy").to(device="cuda", dtype=dtype)
x = torch.randn(shape.steps, shape.batch, shape.hidden, device="cuda", dtype=dtype,
                requires_grad=True)
grad = torch.randn_like(x)
output, _ = model(x)


def backward():
    torch.autograd.backward(output, grad, retain_graph=True)


whole = median_cuda_ms(backward, 5, 20)
(key, captured), = list(graphs._graphs.items())[-1:]
replay = median_cuda_ms(captured.graph.replay, 5, 20)
state = captured.inputs
run_ms = median_cuda_ms(lambda: graphs.run(graphs.build({"name": "dense"}), state), 5, 20)
print(f"{shape.name} {dtype}: autograd backward {whole:.3f} ms, graphs.run {run_ms:.3f} ms, "
      f"replay {replay:.3f} ms")
