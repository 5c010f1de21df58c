"""Which weight-gradient kernel each selection takes, timed on the dW products of the bench
shapes (H100). Where every slice is kept (dense: P 4, R 8, S 0): "keep_all" (sums in
registers; 128 x 128 tiles on two warpgroups or 128 x 256 on four, their tiles loaded by
cp.async; "tma": the same tilings fed by the copy engine) against the
shared-accumulator kernel of two warpgroups that share each B tile ("tall"), and in float32
against mma.sync's shared accumulator ("mma"); "keep_all tf32" is float32's tf32 wgmma
(products.kmajor_mm, since v10; the stored JSON predates it). For coarse 50% (S 4): "masked"
(products.masked_wgrad: dnet's dropped slices read as zeros, sums in registers; the same two
tilings) against region_wgrad's adds into the kept rows of a shared accumulator, one
warpgroup of 64 columns ("narrow") or two that share each A tile ("pair"); in float32 mma.sync
masked (128 x 256 tiles) against region_wgrad's ("mma"). Each is checked against torch and timed (bench.measure.kernel_ms).

Usage: python3 benchmarks/wgrad_warpgroups.py
Writes $OUT/wgrad_warpgroups.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms, overridden
from sparsetrain.kernels import products

P, R = 4, 8
# (S, dtype, kernel): the products settings that select it
NARROW, WIDE = {"WIDE_LEAST_BLOCKS": 10 ** 9}, {"WIDE_LEAST_BLOCKS": 0}
CP_ASYNC = {"USE_TMA": False}
CHOICES = [
    (0, torch.bfloat16, "keep_all 128x128", NARROW | CP_ASYNC),
    (0, torch.bfloat16, "keep_all 128x256", WIDE | CP_ASYNC),
    (0, torch.bfloat16, "keep_all tma 128x128", NARROW),
    (0, torch.bfloat16, "keep_all tma 128x256", WIDE),
    (0, torch.bfloat16, "tall", {"WGRAD_KEEP_ALL": False,
                                 "HOPPER_WGRAD_SMALL_ACCUMULATOR": "tall"}),
    (0, torch.float32, "keep_all tf32", {}),  # since v10: kmajor_mm, its transposes included
    (0, torch.float32, "keep_all", CP_ASYNC),
    (0, torch.float32, "mma", {"WGRAD_KEEP_ALL": False}),
    (4, torch.bfloat16, "masked 128x128", NARROW),
    (4, torch.bfloat16, "masked 128x256", WIDE),
    (4, torch.bfloat16, "narrow", {"HOPPER_WGRAD_LARGE_ACCUMULATOR": "narrow"}),
    (4, torch.bfloat16, "pair", {"HOPPER_WGRAD_LARGE_ACCUMULATOR": "pair"}),
    (4, torch.float32, "masked", {}),
    (4, torch.float32, "mma", {}),
]


def problem(hidden: int, batch: int, steps: int, S: int, dtype: torch.dtype):
    """dnet, its compact values, index, slot, x and the weight gradient in float64."""
    width, keep = 4 * hidden, R - S
    regions = width // (P * R)
    dnet = torch.randn(steps * batch, width, device="cuda").to(dtype)
    x = torch.randn(steps * batch, hidden, device="cuda").to(dtype)
    index = torch.stack([torch.cat([g * R + torch.randperm(R, device="cuda")[:keep].sort().values
                                    for g in range(regions)]) for _ in range(steps)]).int()
    slot = torch.full((steps, width // P), -1, dtype=torch.int32, device="cuda")
    slot.scatter_(1, index.long(), torch.arange(index.shape[1], dtype=torch.int32,
                                                device="cuda").expand(steps, -1).contiguous())
    values = torch.empty(steps * batch, regions * keep * P, device="cuda", dtype=dtype)
    expected = torch.zeros(width, hidden, dtype=torch.float64, device="cuda")
    for t in range(steps):
        rows = slice(t * batch, (t + 1) * batch)
        columns = (index[t].long()[:, None] * P + torch.arange(P, device="cuda")).flatten()
        values[rows] = dnet[rows][:, columns]
        expected[columns] += values[rows].double().t() @ x[rows].double()
    return dnet, values, index, slot, x, expected


def main():
    results = []
    for name in ("large", "xl", "nmt", "ptb"):
        hidden, batch, steps, _ = SHAPES[name]
        problems = {}
        for S, dtype, kernel, settings in CHOICES:
            if (S, dtype) not in problems:
                problems = {(S, dtype): problem(hidden, batch, steps, S, dtype)}
            dnet, values, index, slot, x, expected = problems[(S, dtype)]
            out = torch.zeros(expected.shape, device="cuda")
            flops = 2 * values.shape[0] * values.shape[1] * x.shape[1]

            def work():
                if kernel.startswith("masked"):
                    products.masked_wgrad(dnet, x, slot, P, steps, out)
                else:
                    products.region_wgrad(values, x, index, slot, P, R, S, steps, out)
            with overridden(products, settings):
                work()
                error = ((out.double() - expected).norm() / expected.norm()).item()
                ms = kernel_ms(work)
            results.append({"shape": name, "S": S, "dtype": str(dtype).split(".")[1],
                             "kernel": kernel, "ms": ms, "error": error,
                             "tflops": flops / ms / 1e9})
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "wgrad_warpgroups.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    print(f"{'shape':6} {'S':>2} {'dtype':8} {'kernel':20} {'us':>8} {'TFLOP/s':>8} "
          f"{'rel err':>9}")
    for r in results:
        print(f"{r['shape']:6} {r['S']:2} {r['dtype']:8} {r['kernel']:20} {1000 * r['ms']:8.1f} "
              f"{r['tflops']:8.1f} {r['error']:9.2e}")


if __name__ == "__main__":
    main()
