"""One layer's per-step products at a bench shape, launched a few times each for Nsight Compute:
dense's (gather_mm on all of dnet, W_hh read in runs of backward.DENSE_ROWS rows as the
backward reads it: gather_mm_tma_step on Hopper) and coarse 50%'s (select_gather_mm), with the
split-K the backward pass picks. The launches are plain (no graph), so ncu can replay each kernel.

Usage (on the device):
    ncu --clock-control none --launch-skip 4 --launch-count 2 \\
        --kernel-name regex:"gather_mm" --section SpeedOfLight --section LaunchStats \\
        --section Occupancy --section WarpStateStats --section SchedulerStats \\
        python3 benchmarks/profile_step.py [shape] [dtype]      (default: large bfloat16)
"""
import sys

import torch

from sparsetrain.bench.measure import parse_shape
from sparsetrain.kernels import products
from sparsetrain.kernels.backward import DENSE_ROWS

P, R, S = 4, 8, 4
LAUNCHES = 6


def main():
    shape = parse_shape(sys.argv[1] if len(sys.argv) > 1 else "large")
    dtype = getattr(torch, sys.argv[2] if len(sys.argv) > 2 else "bfloat16")
    hidden, batch, width = shape.hidden, shape.batch, 4 * shape.hidden
    regions, keep = width // (P * R), R - S
    dnet = torch.randn(batch, width, device="cuda").to(dtype)
    w = torch.randn(width, hidden, device="cuda").to(dtype)
    out = torch.zeros(batch, hidden, device="cuda")
    every_run = torch.arange(width // DENSE_ROWS, device="cuda", dtype=torch.int32)[None]
    dense_split = products.step_split(batch, hidden, width, dtype, dnet.device)
    for _ in range(LAUNCHES):
        products.gather_mm(dnet, w, every_run, DENSE_ROWS, batch, out, dense_split)
    partial = torch.rand(batch // 8, width // P, device="cuda")
    index = torch.empty(regions, keep, device="cuda", dtype=torch.int32)
    slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
    values = torch.empty(batch, regions * keep * P, device="cuda", dtype=dtype)
    energy = torch.empty(regions, 2, device="cuda")
    coarse_split = products.step_split(batch, hidden, values.shape[1], dtype, dnet.device)
    for _ in range(LAUNCHES):
        products.select_gather_mm(dnet, partial, w, P, R, S, out, coarse_split, index, slot,
                                  values, energy)
    torch.cuda.synchronize()
    print(f"{shape.name} {dtype}: dense split {dense_split}, coarse split {coarse_split}")


if __name__ == "__main__":
    main()
