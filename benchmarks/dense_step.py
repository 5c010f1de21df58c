"""Dense's per-step product dh_{t-1} = dnet_t W_hh (every slice kept, W_hh read in 64-row
slices as backward.DENSE_ROWS) at the bench shapes, bf16: loaded by cp.async
(gather_mm_hopper) against the copy engine (gather_mm_tma's step entry), at the split-K the
backward picks and at every split 1..32. Each is checked against torch and timed
(bench.measure.kernel_ms).

Usage: python3 benchmarks/dense_step.py
Writes $OUT/dense_step.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms, overridden
from sparsetrain.kernels import products

ROWS = 64  # backward.DENSE_ROWS
KERNELS = {"cp.async": {"TMA_STEP": False}, "tma": {"TMA_STEP": True}}


def main():
    results = []
    for name in ("large", "xl", "nmt"):  # ptb's N = 64 rows take the 64-row mma.sync tiles
        hidden, batch, _, _ = SHAPES[name]
        width = 4 * hidden
        dnet = torch.randn(batch, width, device="cuda").bfloat16()
        w_hh = torch.randn(width, hidden, device="cuda").bfloat16()
        index = torch.arange(width // ROWS, device="cuda", dtype=torch.int32)[None]
        expected = dnet.double() @ w_hh.double()
        out = torch.zeros(batch, hidden, device="cuda")
        shipped_split = products.step_split(batch, hidden, width, torch.bfloat16, dnet.device)
        for kernel, settings in KERNELS.items():
            for split in sorted({shipped_split, 1, 2, 4, 8, 16, 32}):
                def work():
                    out.zero_()
                    products.gather_mm(dnet, w_hh, index, ROWS, batch, out, split)
                with overridden(products, settings):
                    work()
                    error = ((out.double() - expected).norm() / expected.norm()).item()
                    us = 1000 * kernel_ms(work)
                results.append({"shape": name, "kernel": kernel, "split": split,
                                "shipped_split": split == shipped_split, "us": us,
                                "error": error})
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "dense_step.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    print(f"{'shape':6} {'kernel':9} {'split':>5} {'us (with zeroing)':>18} {'rel err':>9}")
    for r in results:
        mark = " (shipped split)" if r["shipped_split"] else ""
        print(f"{r['shape']:6} {r['kernel']:9} {r['split']:5d} {r['us']:18.1f} "
              f"{r['error']:9.2e}{mark}")


if __name__ == "__main__":
    main()
