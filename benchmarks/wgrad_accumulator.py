"""Which wgmma region_wgrad takes coarse's large accumulators: one warpgroup of 64 columns
("narrow", two blocks per SM) or two warpgroups of 64 sharing each A tile ("pair", one block
per SM, four stages). Each is checked against torch and timed (bench.measure.kernel_ms) on the
dW products of the bench shapes at coarse 50% (P 4, R 8, S 4), bf16, H100.

Usage: python3 benchmarks/wgrad_accumulator.py
Writes $OUT/wgrad_accumulator.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms
from sparsetrain.kernels import products

P, R, S = 4, 8, 4
CHOICES = ("narrow", "pair")


def problem(hidden: int, batch: int, steps: int):
    width, keep = 4 * hidden, R - S
    regions = width // (P * R)
    values = torch.randn(steps * batch, regions * keep * P, device="cuda").bfloat16()
    x = torch.randn(steps * batch, hidden, device="cuda").bfloat16()
    index = torch.stack([torch.cat([g * R + torch.randperm(R, device="cuda")[:keep].sort().values
                                    for g in range(regions)]) for _ in range(steps)]).int()
    expected = torch.zeros(width, hidden, dtype=torch.float64, device="cuda")
    for t in range(steps):
        rows = (index[t].long()[:, None] * P + torch.arange(P, device="cuda")).flatten()
        expected[rows] += (values[t * batch:(t + 1) * batch].double().t()
                           @ x[t * batch:(t + 1) * batch].double())
    return values, x, index, expected


def main():
    results = []
    shipped = products.HOPPER_WGRAD_LARGE_ACCUMULATOR
    for name in ("large", "xl", "nmt", "ptb"):
        hidden, batch, steps, _ = SHAPES[name]
        values, x, index, expected = problem(hidden, batch, steps)
        out = torch.zeros(expected.shape, device="cuda")
        flops = 2 * values.shape[0] * values.shape[1] * x.shape[1]
        for choice in CHOICES:
            products.HOPPER_WGRAD_LARGE_ACCUMULATOR = choice

            def work():
                products.region_wgrad(values, x, index, P, R, S, steps, out)
            work()
            error = ((out.double() - expected).norm() / expected.norm()).item()
            ms = kernel_ms(work)
            results.append({"shape": name, "kernel": choice, "ms": ms, "error": error,
                            "tflops": flops / ms / 1e9})
    products.HOPPER_WGRAD_LARGE_ACCUMULATOR = shipped
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "wgrad_accumulator.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    print(f"{'shape':6} {'kernel':7} {'us':>8} {'TFLOP/s':>8} {'rel err':>9}")
    for r in results:
        print(f"{r['shape']:6} {r['kernel']:7} {1000 * r['ms']:8.1f} {r['tflops']:8.1f} "
              f"{r['error']:9.2e}")


if __name__ == "__main__":
    main()
