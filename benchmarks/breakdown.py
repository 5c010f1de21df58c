"""Where the backward time goes: each kernel of one layer's backward timed alone (eager, CUDA
events, median of 20), with its FLOP rate. Usage: python3 benchmarks/breakdown.py [shape]."""
import json
import os
import sys

import torch

from sparsetrain.bench.measure import median_cuda_ms, parse_shape
from sparsetrain.kernels import products
from sparsetrain.kernels.pointwise import backward_step
from sparsetrain.kernels.select import coarse_select


def median_us(work):
    return median_cuda_ms(work) * 1000


def rows_for(shape, dtype):
    H, N, T = shape.hidden, shape.batch, shape.steps
    W, dev = 4 * H, "cuda"
    r = lambda *s, d=dtype: torch.randn(*s, device=dev).to(d)  # noqa: E731
    w_hh, w_ih = r(W, H), r(W, H)
    dense_index = torch.arange(W // 4, device=dev, dtype=torch.int32)
    dnet_all = r(T * N, W)
    P, R, S = 4, 8, 4
    G, keep = W // (P * R), R - S
    kept = torch.stack([torch.cat([g * R + torch.randperm(R, device=dev)[:keep].sort().values
                                   for g in range(G)]) for _ in range(T)]).int()
    vals = r(T * N, G * keep * P)
    x = r(T * N, H)
    out = []

    def add(name, us, flops=0.0):
        out.append({"kernel": name, "us": us, "TFLOPs": flops / us / 1e6 if flops else None})

    dh = torch.zeros(N, H, device=dev)
    for label, a, idx, kc in (("dense", dnet_all[:N], dense_index[None], W),
                              ("coarse50", vals[:N], kept[:1], W // 2)):
        for split in (1, 4, 8):
            add(f"dh step gather_mm {label} split{split}",
                median_us(lambda: products.gather_mm(a, w_hh, idx, 4, N, dh, split)),
                2 * N * kc * H)
    dx = torch.empty(T * N, H, device=dev, dtype=dtype)
    add("dx gather_mm dense", median_us(lambda: products.gather_mm(
        dnet_all, w_ih, dense_index.expand(T, -1).contiguous(), 4, N, dx)), 2 * T * N * W * H)
    add("dx gather_mm coarse50", median_us(lambda: products.gather_mm(
        vals, w_ih, kept, 4, N, dx)), T * N * W * H)
    dw = torch.empty(W, H, device=dev)
    add("dW region_wgrad dense", median_us(lambda: products.region_wgrad(
        dnet_all, x, dense_index.expand(T, -1).contiguous(), 4, 8, 0, T, dw)), 2 * T * N * W * H)
    add("dW region_wgrad coarse50", median_us(lambda: products.region_wgrad(
        vals, x, kept, 4, R, S, T, dw)), T * N * W * H)
    add("dW torch (cuBLAS) dense", median_us(lambda: dnet_all.t() @ x), 2 * T * N * W * H)
    gates, c = torch.rand(N, W, device=dev).to(dtype), torch.randn(N, H, device=dev)
    dnet, grad_out, dc = r(N, W), r(N, H), c.clone()
    partial = torch.empty(N // 32, W // 4, device=dev)
    add("pointwise step", median_us(lambda: backward_step(dh, grad_out, dc, gates, c, c, dnet)))
    add("pointwise step + coarse norms", median_us(lambda: backward_step(
        dh, grad_out, dc, gates, c, c, dnet, partial, 4, 32, "coarse")))
    index = torch.empty(G, keep, device=dev, dtype=torch.int32)
    slot = torch.empty(W // 4, device=dev, dtype=torch.int32)
    v1, energy = torch.empty(N, G * keep * P, device=dev, dtype=dtype), torch.empty(G, 2, device=dev)
    add("coarse_select step", median_us(lambda: coarse_select(partial, dnet, P, R, S, index, slot, v1, energy)))
    add("torch zero_ (launch floor)", median_us(lambda: torch.empty(1, device=dev).zero_()))
    return out


shape = parse_shape(sys.argv[1] if len(sys.argv) > 1 else "large")
result = {}
for dtype in (torch.bfloat16, torch.float32):
    rows = rows_for(shape, dtype)
    result[str(dtype)] = rows
    for row in rows:
        rate = f"{row['TFLOPs']:.1f} TFLOP/s" if row["TFLOPs"] else ""
        print(f"{shape.name} {str(dtype)[6:]:9s} {row['kernel']:34s} {row['us']:9.1f} us {rate}")
json.dump(result, open(os.path.join(os.environ.get("OUT", "."), f"breakdown_{shape.name}.json"), "w"), indent=1)
