"""What a backward costs beyond its graph replay: the same layer timed as the whole autograd
backward, as graphs.run (input copies, replay, gradient copies, statistics), and as the
replay alone (CUDA events, medians); and the host's own time per autograd backward (calls
queued back to back, one synchronize at the end: where it matches the CUDA-event time, the
backward waits on Python, not on the GPU). With --profile, the host operations that take the
most time (torch.profiler, CPU).

Usage: python3 benchmarks/overhead.py [shape] [dtype] [method] [--profile]
       (default: large bfloat16 dense; method dense or coarse at 50%)
"""
import dataclasses
import sys
import time

import torch

from sparsetrain.bench.measure import Configuration, median_cuda_ms, parse_shape
from sparsetrain.kernels import graphs
from sparsetrain.sparsify import build

arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
shape = parse_shape(arguments[0] if arguments else "large")
dtype = getattr(torch, arguments[1] if len(arguments) > 1 else "bfloat16")
layer = Configuration(arguments[2] if len(arguments) > 2 else "dense", 0.5,
                      dataclasses.replace(shape, layers=1), dtype)
backward, spec = layer.backward, layer.spec

whole = median_cuda_ms(backward, 5, 20)
(key, captured), = list(graphs._graphs.items())[-1:]
replay = median_cuda_ms(captured.graph.replay, 5, 20)
state = captured.inputs
sparsifier = build(spec)
run_ms = median_cuda_ms(lambda: graphs.run(sparsifier, state), 5, 20)
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(40):  # past the ~30 backwards after which statistics used to stall the host
    backward()
host = (time.perf_counter() - start) / 40 * 1000
torch.cuda.synchronize()
print(f"{shape.name} {dtype} {spec['name']}: autograd backward {whole:.3f} ms, graphs.run "
      f"{run_ms:.3f} ms, replay {replay:.3f} ms, host time per backward {host:.3f} ms")
if "--profile" in sys.argv:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(5):
            backward()
        torch.cuda.synchronize()
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=30,
        max_shapes_column_width=60))
