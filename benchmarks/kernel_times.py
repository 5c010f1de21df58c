"""Where one layer's backward spends its GPU time: every kernel's device time (torch profiler,
eager run, so launch overhead is not counted) beside the same plan replayed as one CUDA graph.

Usage: python3 benchmarks/kernel_times.py [shape ...]   (default: large)
Writes $OUT/kernel_times.json; prints per method: graph ms, the sum of kernel times, and the
kernels grouped by name (total us, calls, us per call).
"""
import json
import os
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from sparsetrain.bench.measure import kernel_ms, method_spec, overridden, parse_shape
from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import products
from sparsetrain.sparsify import build


def layer_state(shape, dtype):
    H, N, T = shape.hidden, shape.batch, shape.steps
    r = lambda *s: torch.randn(*s, device="cuda").to(dtype)  # noqa: E731
    return plans.LayerState(
        x=r(T, N, H), w_ih=r(4 * H, H) * 0.05, w_hh=r(4 * H, H) * 0.05,
        hidden=r(T + 1, N, H), cells=torch.randn(T + 1, N, H, device="cuda"),
        gates=torch.rand(T, N, 4 * H, device="cuda").to(dtype), d_output=r(T, N, H),
        d_h_last=None, d_c_last=None)


def kernel_table(sparsifier, state):
    for _ in range(2):
        plans.run(sparsifier, state)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        plans.run(sparsifier, state)
        torch.cuda.synchronize()
    totals = defaultdict(lambda: [0.0, 0])
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            name = event.name.split("<")[0][:60]
            totals[name][0] += event.device_time
            totals[name][1] += 1
    return {name: {"us": us, "calls": calls} for name, (us, calls) in totals.items()}


def graph_ms(sparsifier, state):
    return kernel_ms(lambda: plans.run(sparsifier, state), launches=1)


def main():
    result = {"device": torch.cuda.get_device_name()}
    for shape_name in sys.argv[1:] or ["large"]:
        shape = parse_shape(shape_name)
        for dtype in (torch.bfloat16, torch.float32):
            state = layer_state(shape, dtype)
            for method in ("dense", "coarse", "coarse unfused", "fine"):
                # coarse unfused: its selection in the per-step product (or on its own), as
                # before the cell step made it (backward.FUSED_COARSE_STEP)
                sparsifier = build(method_spec(method.split()[0], 0.5, shape))
                with overridden(plans, {"FUSED_COARSE_STEP": method != "coarse unfused"}):
                    kernels = kernel_table(sparsifier, state)
                    replay = graph_ms(sparsifier, state)
                summed = sum(k["us"] for k in kernels.values()) / 1000
                key = f"{shape.name} {str(dtype)[6:]} {method}"
                result[key] = {"graph_ms": replay, "kernel_sum_ms": summed, "kernels": kernels}
                print(f"== {key}: graph {replay:.3f} ms, kernels {summed:.3f} ms")
                for name, k in sorted(kernels.items(), key=lambda kv: -kv[1]["us"]):
                    per_call = k["us"] / k["calls"]
                    print(f"   {name:60s} {k['us']:9.1f} us {k['calls']:4d} x {per_call:7.1f}")
    # The per-step product dh = s_t W_hh alone, dense, at each split of its depth (kernel time).
    for shape_name in sys.argv[1:] or ["large"]:
        shape = parse_shape(shape_name)
        H, N = shape.hidden, shape.batch
        a = torch.randn(N, 4 * H, device="cuda").bfloat16()
        w = torch.randn(4 * H, H, device="cuda").bfloat16()
        index = torch.arange(H, device="cuda", dtype=torch.int32)[None]
        out = torch.zeros(N, H, device="cuda")
        for split in (1, 2, 4, 8, 16, 32):
            if 4 * H // split < 64:
                continue
            work = lambda: products.gather_mm(a, w, index, 4, N, out, split)  # noqa: E731
            for _ in range(3):
                work()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    work()
                torch.cuda.synchronize()
            us = sum(e.device_time for e in prof.events()
                     if e.device_type == torch.autograd.DeviceType.CUDA) / 10
            tflops = 2 * N * 4 * H * H / us / 1e6
            result[f"{shape.name} step product split {split}"] = {"us": us, "TFLOPs": tflops}
            print(f"{shape.name} bfloat16 dense step product, split {split:2d}: {us:7.1f} us "
                  f"{tflops:6.1f} TFLOP/s")
    json.dump(result, open(os.path.join(os.environ.get("OUT", "."), "kernel_times.json"), "w"),
              indent=1)


if __name__ == "__main__":
    main()
