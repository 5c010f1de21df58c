"""The batched product dx = s W_ih of one layer at a bench shape (bf16), launched a few times
per kernel for Nsight Compute: coarse 50%'s (P = 4, each step's own kept slices) on the
cp.async-fed gather_mm, on gather_mm_tma_a (A by the copy engine, B's rows by cp.async in
loading warps) and on gather_mm_tma with a box a slice; dense's (64-row runs of W_ih) on
gather_mm_tma. The launches are plain (no graph), so ncu can replay each kernel.

Usage (on the device):
    ncu --clock-control none --launch-skip-before-match 0 --kernel-name regex:"gather_mm" \\
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \\
        python3 benchmarks/profile_dx.py [shape]      (default: xl)
"""
import sys

import torch

from sparsetrain.bench.measure import overridden, parse_shape
from sparsetrain.kernels import products
from sparsetrain.kernels.backward import DENSE_ROWS

SLICE = 4  # coarse's P
LAUNCHES = 2
KERNELS = {  # the products settings that select each kernel
    "cp.async": {"USE_TMA": False},
    "tma a": {"USE_TMA": True, "TMA_A": True, "TMA_GATHER_SLICE": 64, "TMA_GATHER_WIDE": True},
    "tma boxes": {"USE_TMA": True, "TMA_A": False, "TMA_GATHER_SLICE": 1,
                  "TMA_GATHER_WIDE": True},
}


def main():
    shape = parse_shape(sys.argv[1] if len(sys.argv) > 1 else "xl")
    hidden, batch, steps, width = shape.hidden, shape.batch, shape.steps, 4 * shape.hidden
    w_ih = torch.randn(width, hidden, device="cuda").bfloat16()
    out = torch.empty(steps * batch, hidden, device="cuda").bfloat16()
    kept = width // (2 * SLICE)
    index = torch.stack([torch.randperm(width // SLICE, device="cuda")[:kept].sort().values
                         for _ in range(steps)]).int()
    values = torch.randn(steps * batch, kept * SLICE, device="cuda").bfloat16()
    for name, settings in KERNELS.items():
        with overridden(products, settings):
            for _ in range(LAUNCHES):
                products.gather_mm(values, w_ih, index, SLICE, batch, out)
        torch.cuda.synchronize()
        print(f"coarse {name}: launched {LAUNCHES}")
    every_run = torch.arange(width // DENSE_ROWS, device="cuda", dtype=torch.int32)
    dense_values = torch.randn(steps * batch, width, device="cuda").bfloat16()
    for _ in range(LAUNCHES):
        products.gather_mm(dense_values, w_ih, every_run.expand(steps, -1).contiguous(),
                           DENSE_ROWS, batch, out)
    torch.cuda.synchronize()
    print(f"{shape.name}: dense on gather_mm_tma, launched {LAUNCHES}")


if __name__ == "__main__":
    main()
