"""gather_mm on the batched product dx = s W_ih of the bench shapes (bf16, H100), for dense
(every slice) and coarse 50% (half the slices), against torch.matmul (cuBLAS) on the same
un-indexed product: how far our batched products are from the library's; gather_mm loaded by
cp.async and by the copy engine (TMA). Each is checked
against torch and timed (bench.measure.kernel_ms).

(Its first version also timed 128 x 256 tiles on four warpgroups: 3-19% slower than 128 x 128,
so they were dropped; results/history/v8_gather_wide_tiles.json.)

Usage: python3 benchmarks/batched_products.py
Writes $OUT/batched_products.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms, overridden
from sparsetrain.kernels import products

SLICE = 4  # coarse's P
# gather_mm's kernels, by the products settings that select them: loaded by cp.async (128 x
# 128), or by the copy engine (128 x 128 and 128 x 256 tiles).
TMA = {"USE_TMA": True, "TMA_GATHER_SLICE": 1}  # P = 4 too, 16 boxes a tile
KERNELS = {
    "gather_mm cp.async": {"USE_TMA": False},
    "gather_mm tma 128x128": TMA | {"TMA_GATHER_WIDE": False},
    "gather_mm tma 128x256": TMA | {"TMA_GATHER_WIDE": True},
}


def main():
    results = []
    for name in ("large", "xl", "nmt", "ptb"):
        hidden, batch, steps, _ = SHAPES[name]
        width = 4 * hidden
        w_ih = torch.randn(width, hidden, device="cuda").bfloat16()
        # dense reads W_ih in slices of 64 rows, as the backward does (backward.DENSE_ROWS)
        for method, P, kept in (("dense", 64, width // 64),
                                ("coarse", SLICE, width // (2 * SLICE))):
            index = torch.stack([torch.randperm(width // P, device="cuda")[:kept].sort().values
                                 for _ in range(steps)]).int()
            values = torch.randn(steps * batch, kept * P, device="cuda").bfloat16()
            expected = torch.cat([
                values[t * batch:(t + 1) * batch].double()
                @ w_ih.double()[(index[t].long()[:, None] * P
                                 + torch.arange(P, device="cuda")).flatten()]
                for t in range(steps)])
            out = torch.empty(steps * batch, hidden, device="cuda").bfloat16()
            flops = 2 * values.shape[0] * values.shape[1] * hidden
            matmul = kernel_ms(lambda: torch.matmul(values, w_ih[:kept * P]))
            results.append({"shape": name, "method": method, "kernel": "torch.matmul",
                            "ms": matmul, "error": 0.0, "tflops": flops / matmul / 1e9})

            def work():
                products.gather_mm(values, w_ih, index, P, batch, out)
            for kernel, settings in KERNELS.items():
                with overridden(products, settings):
                    out.fill_(float("nan"))
                    work()
                    error = ((out.double() - expected).norm() / expected.norm()).item()
                    ms = kernel_ms(work)
                results.append({"shape": name, "method": method, "kernel": kernel, "ms": ms,
                                "error": error, "tflops": flops / ms / 1e9})
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "batched_products.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    print(f"{'shape':6} {'method':7} {'kernel':22} {'us':>8} {'TFLOP/s':>8} {'rel err':>9}")
    for r in results:
        print(f"{r['shape']:6} {r['method']:7} {r['kernel']:22} {1000 * r['ms']:8.1f} "
              f"{r['tflops']:8.1f} {r['error']:9.2e}")


if __name__ == "__main__":
    main()
