"""What the selection costs inside coarse's per-step product (products.select_gather_mm)
against the plain indexed product on compact values (products.gather_mm), per step, at the
bench shapes (coarse 50%, split-K as the backward pass picks it).

Rows: `plain` gather_mm on compact values; `select` select_gather_mm (which also writes the
compact values, index, slots and energies) with the cell step's row chunks (N / 8 partial norms
per slice); `select 1 chunk` the same with one partial norm per slice (the decision's loads are
N / 8 times fewer). Before the selection moved into the product, a step cost `plain` plus the
selection kernel (3.9 us at large bf16, 7.9 us at xl: benchmarks/NOTES.md). P = 4 reads bf16 slices as two 8-byte
copies; P = 8 (R = 4) as one 16-byte copy.

Usage: python3 benchmarks/step_product.py
Writes $OUT/step_product.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms
from sparsetrain.kernels import products


def times(hidden: int, batch: int, dtype: torch.dtype, P: int, R: int) -> dict:
    S = R // 2
    width, keep = 4 * hidden, R - S
    regions = width // (P * R)
    kc = regions * keep * P
    dnet = torch.randn(batch, width, device="cuda").to(dtype)
    w = torch.randn(width, hidden, device="cuda").to(dtype)
    values = torch.randn(batch, kc, device="cuda").to(dtype)
    index = torch.empty(regions, keep, device="cuda", dtype=torch.int32)
    slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
    energy = torch.empty(regions, 2, device="cuda")
    out = torch.zeros(batch, hidden, device="cuda")
    split = products.step_split(batch, hidden, kc, dtype, dnet.device)
    row = {}
    for chunks, name in ((batch // 8, "select"), (1, "select 1 chunk")):
        partial = torch.rand(chunks, width // P, device="cuda")
        row[name] = kernel_ms(lambda: products.select_gather_mm(
            dnet, partial, w, P, R, S, out, split, index, slot, values, energy))
    flat = index.reshape(1, -1)
    row["plain"] = kernel_ms(lambda: products.gather_mm(values, w, flat, P, batch, out, split))
    return {name: 1000 * ms for name, ms in row.items()}


def main():
    results = []
    for name in ("large", "xl", "ptb", "nmt"):
        hidden, batch, _, _ = SHAPES[name]
        for dtype in (torch.bfloat16, torch.float32):
            for P, R in ((4, 8), (8, 4)):
                results.append({"shape": name, "dtype": str(dtype).split(".")[1], "P": P,
                                "R": R, "us": times(hidden, batch, dtype, P, R)})
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "step_product.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    print(f"{'shape':6} {'dtype':9} {'P':>2} {'plain':>7} {'select':>7} {'1 chunk':>8}")
    for r in results:
        us = r["us"]
        print(f"{r['shape']:6} {r['dtype']:9} {r['P']:2} {us['plain']:7.1f} {us['select']:7.1f} "
              f"{us['select 1 chunk']:8.1f}")


if __name__ == "__main__":
    main()
