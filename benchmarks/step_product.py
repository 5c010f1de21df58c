"""What the selection costs inside coarse's per-step product (products.select_gather_mm)
against the plain indexed product on compact values (products.gather_mm), per step, at the
bench shapes (coarse 50%, split-K as the backward pass picks it).

Columns: `plain` gather_mm on compact values; `select` select_gather_mm (which also writes the
compact values, index, slots and energies) with the cell step's row chunks (N / 8 partial norms
per slice). Before the selection moved into the product, a step cost `plain` plus the
selection kernel (3.9 us at large bf16, 7.9 us at xl: benchmarks/NOTES.md). P = 4 reads bf16
slices as 8-byte halves; P = 8 (R = 4) whole chunks.

Usage: python3 benchmarks/step_product.py [--splits]   (--splits: also every split-K 2..32)
Writes $OUT/step_product.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib
import sys

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms
from sparsetrain.kernels import products


def times(hidden: int, batch: int, dtype: torch.dtype, P: int, R: int,
          split: int | None = None) -> dict:
    """{"split": split-K, "us": {column: microseconds}} for one problem (split: as the
    backward pass picks it, unless given)."""
    S = R // 2
    width, keep = 4 * hidden, R - S
    regions = width // (P * R)
    kc = regions * keep * P
    dnet = torch.randn(batch, width, device="cuda").to(dtype)
    w = torch.randn(width, hidden, device="cuda").to(dtype)
    values = torch.randn(batch, kc, device="cuda").to(dtype)
    index = (torch.arange(regions, device="cuda")[:, None] * R
             + torch.arange(keep, device="cuda")).int()  # a valid selection until select runs
    slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
    energy = torch.empty(regions, 2, device="cuda")
    out = torch.zeros(batch, hidden, device="cuda")
    split = split or products.step_split(batch, hidden, kc, dtype, dnet.device)
    partial = torch.rand(batch // 8, width // P, device="cuda")
    flat = index.reshape(1, -1)
    row = {"plain": kernel_ms(lambda: products.gather_mm(values, w, flat, P, batch, out, split)),
           "select": kernel_ms(lambda: products.select_gather_mm(
               dnet, partial, w, P, R, S, out, split, index, slot, values, energy))}
    return {"split": split, "us": {name: 1000 * ms for name, ms in row.items()}}


def main():
    results = []
    splits = [None] + ([2, 4, 8, 16, 32] if "--splits" in sys.argv else [])
    for name in ("large", "xl", "ptb", "nmt"):
        hidden, batch, _, _ = SHAPES[name]
        for dtype in (torch.bfloat16, torch.float32):
            for P, R in ((4, 8), (8, 4)):
                for split in splits:
                    results.append({"shape": name, "dtype": str(dtype).split(".")[1], "P": P,
                                    "R": R, **times(hidden, batch, dtype, P, R, split)})
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "step_product.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    names = ("plain", "select")
    print(f"{'shape':6} {'dtype':9} {'P':>2} {'split':>5} " + " ".join(f"{n:>10}" for n in names))
    for r in results:
        us = r["us"]
        print(f"{r['shape']:6} {r['dtype']:9} {r['P']:2} {r['split']:5d} "
              + " ".join(f"{us[n]:10.1f}" for n in names))


if __name__ == "__main__":
    main()
