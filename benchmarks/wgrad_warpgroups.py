"""Which wgmma region_wgrad each accumulator takes, timed on the dW products of the bench shapes
(bf16, H100): for a small accumulator (dense: P 4, R 8, S 0) one warpgroup of 128 columns
("wide") or two that share each B tile ("tall", 128 compact columns); for a large one (coarse
50%: S 4) one warpgroup of 64 columns ("narrow", two blocks per SM) or two that share each A
tile ("pair", one block per SM, four stages). Each is checked against torch and timed
(bench.measure.kernel_ms).

Usage: python3 benchmarks/wgrad_warpgroups.py
Writes $OUT/wgrad_warpgroups.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms
from sparsetrain.kernels import products

P, R = 4, 8
CHOICES = {0: ("HOPPER_WGRAD_SMALL_ACCUMULATOR", ("wide", "tall")),
           4: ("HOPPER_WGRAD_LARGE_ACCUMULATOR", ("narrow", "pair"))}


def problem(hidden: int, batch: int, steps: int, S: int):
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
    for name in ("large", "xl", "nmt", "ptb"):
        hidden, batch, steps, _ = SHAPES[name]
        for S, (setting, choices) in CHOICES.items():
            values, x, index, expected = problem(hidden, batch, steps, S)
            out = torch.zeros(expected.shape, device="cuda")
            flops = 2 * values.shape[0] * values.shape[1] * x.shape[1]
            shipped = getattr(products, setting)
            for choice in choices:
                setattr(products, setting, choice)

                def work():
                    products.region_wgrad(values, x, index, P, R, S, steps, out)
                work()
                error = ((out.double() - expected).norm() / expected.norm()).item()
                ms = kernel_ms(work)
                results.append({"shape": name, "S": S, "kernel": choice, "ms": ms,
                                "error": error, "tflops": flops / ms / 1e9})
            setattr(products, setting, shipped)
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "wgrad_warpgroups.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    print(f"{'shape':6} {'S':>2} {'kernel':7} {'us':>8} {'TFLOP/s':>8} {'rel err':>9}")
    for r in results:
        print(f"{r['shape']:6} {r['S']:2} {r['kernel']:7} {1000 * r['ms']:8.1f} "
              f"{r['tflops']:8.1f} {r['error']:9.2e}")


if __name__ == "__main__":
    main()
