"""Which tiling each product kernel should use: every candidate `Tiles` compiled beside the
shipped ones, checked against torch, timed on the problems the backward pass gives it.

Usage: python3 benchmarks/tile_sweep.py [--quick] [--wgrad]   (--wgrad: weight gradients only)
Writes $OUT/tile_sweep.json (or benchmarks/results/tile_sweep.json without $OUT) and prints,
per problem, each candidate's kernel time (a CUDA graph of 10 launches, replayed: median of 20
after warm-up, divided by 10), TFLOP/s and its registers / spilled bytes; the best is starred.
cuBLAS (torch.matmul) on the same product without the index gives each problem's reference.
bf16 problems also time the shipped wgmma kernel (hopper.cu) where the GPU has it. (A build
with the mma asm statements not volatile was tried on 2026-11-25 and gained nothing.)
"""
import json
import os
import pathlib
import sys

import cupy
import torch

from sparsetrain.bench.measure import kernel_ms
from sparsetrain.kernels import _loader, products
from sparsetrain.kernels.products import Tiles

GATHER_CANDIDATES = [
    Tiles(64, 128, 32, 2, 4, 4),
    Tiles(128, 128, 32, 2, 4, 4),
    Tiles(128, 128, 32, 2, 4, 3),
    Tiles(64, 64, 32, 2, 2, 4),
]
WGRAD_CANDIDATES = [
    Tiles(64, 128, 32, 2, 4, 3),
    Tiles(64, 128, 64, 2, 4, 3),
    Tiles(128, 128, 32, 2, 4, 3),
    Tiles(128, 128, 64, 2, 4, 2),
    Tiles(128, 128, 32, 4, 2, 3),
    Tiles(128, 128, 16, 2, 4, 4),
    Tiles(128, 256, 32, 2, 4, 3),
]
OUTPUTS = [("float32", "float", "float32", "float"), ("bfloat16", "bf16", "float32", "float"),
           ("bfloat16", "bf16", "bfloat16", "bf16")]
SHARED_LIMIT = products.SHARED_LIMIT


def module_source():
    lines = [_loader.source_text("products")]
    for i, tiles in enumerate(GATHER_CANDIDATES):
        lines.append(f"typedef {tiles.cuda()} GatherTry{i};")
        for dtype, ctype, out, out_ctype in OUTPUTS:
            lines.append(f"GATHER_ENTRY(try{i}_gather_{dtype}_out_{out}, {ctype}, {out_ctype}, "
                         f"GatherTry{i})")
    for i, tiles in enumerate(WGRAD_CANDIDATES):
        lines.append(f"typedef {tiles.cuda()} WgradTry{i};")
        for dtype, ctype in (("float32", "float"), ("bfloat16", "bf16")):
            lines.append(f"WGRAD_ENTRY(try{i}_wgrad_{dtype}, {ctype}, WgradTry{i}, "
                         "SHARED_ACCUMULATOR)")
            lines.append(f"WGRAD_ENTRY(try{i}_wgrad_keep_all_{dtype}, {ctype}, WgradTry{i}, "
                         "KEEP_ALL)")
    return "\n".join(lines)


def relative_error(out, expected):
    return ((out.double() - expected).norm() / expected.norm()).item()


def kept_index(steps, slices, regions, keep, device):
    per_region = slices // regions
    return torch.stack([torch.cat([g * per_region
                                   + torch.randperm(per_region, device=device)[:keep].sort().values
                                   for g in range(regions)]) for _ in range(steps)]).int()


def gather_problems(quick):
    # name, dtype, out dtype, M, Kc (kept), 4H, F, rows_per_group, splits to try
    problems = [
        ("dx large dense", "bfloat16", "bfloat16", 4480, 4096, 4096, 1024, 128, [1]),
        ("dx large coarse", "bfloat16", "bfloat16", 4480, 2048, 4096, 1024, 128, [1]),
        ("dx xl dense", "bfloat16", "bfloat16", 8960, 8192, 8192, 2048, 256, [1]),
        ("dx large dense", "float32", "float32", 4480, 4096, 4096, 1024, 128, [1]),
        ("step large dense", "bfloat16", "float32", 128, 4096, 4096, 1024, 128, [4, 8, 16, 32]),
        ("step large coarse", "bfloat16", "float32", 128, 2048, 4096, 1024, 128, [4, 8, 16]),
        ("step xl dense", "bfloat16", "float32", 256, 8192, 8192, 2048, 256, [2, 4, 8, 16]),
        ("step large dense", "float32", "float32", 128, 4096, 4096, 1024, 128, [4, 8, 16, 32]),
        ("step ptb dense", "bfloat16", "float32", 64, 2048, 2048, 512, 64, [4, 8, 16]),
    ]
    return problems[:2] + problems[4:7] if quick else problems


def wgrad_problems(quick):
    # name, dtype, steps, N, S (P=4, R=8), 4H, F
    problems = [
        ("dW large dense", "bfloat16", 35, 128, 0, 4096, 1024),
        ("dW large coarse", "bfloat16", 35, 128, 4, 4096, 1024),
        ("dW xl dense", "bfloat16", 35, 256, 0, 8192, 2048),
        ("dW xl coarse", "bfloat16", 35, 256, 4, 8192, 2048),
        ("dW large dense", "float32", 35, 128, 0, 4096, 1024),
        ("dW large coarse", "float32", 35, 128, 4, 4096, 1024),
        ("dW xl dense", "float32", 35, 256, 0, 8192, 2048),
        ("dW ptb coarse", "bfloat16", 35, 64, 4, 2048, 512),
    ]
    return problems[:1] if quick else problems


def fastest_split(function, tiles, splits, inputs, expected, out_dtype):
    """{ms, split, error} of a gather_mm kernel at its fastest split-K (None: none fits)."""
    a, b, index, P, group = inputs
    (M, kc), F = a.shape, b.shape[1]
    best = None
    for split in splits:
        grid, block, shared = products.gather_geometry(a.dtype, M, kc, F, P, split, tiles)
        if shared > SHARED_LIMIT:
            continue
        out = torch.zeros(M, F, device="cuda", dtype=getattr(torch, out_dtype))
        args = (a, b, index, P, group, out, M, kc, F)
        _loader.launch_function(function, grid, block, args, shared)
        error = relative_error(out, expected)
        # The backward's cell step clears the split-K output: no zeroing timed.
        ms = kernel_ms(lambda: _loader.launch_function(function, grid, block, args, shared))
        if best is None or ms < best["ms"]:
            best = {"ms": ms, "split": split, "error": error}
    return best


def sweep_gather(entry, quick):
    results = []
    for name, dtype, out_dtype, M, kc, width, F, group, splits in gather_problems(quick):
        torch_dtype = getattr(torch, dtype)
        P = 4
        a = torch.randn(M, kc, device="cuda").to(torch_dtype)
        b = (torch.randn(width, F, device="cuda") * 0.05).to(torch_dtype)
        index = kept_index(M // group, width // P, width // (P * 8), kc * 8 // width, "cuda")
        expected = torch.cat([a[g * group:(g + 1) * group].double()
                              @ b.double()[(index[g].long()[:, None] * P
                                            + torch.arange(P, device="cuda")).flatten()]
                              for g in range(M // group)])
        problem = f"{name} {dtype}"
        flops = 2 * M * kc * F
        dense_b = b[:kc]
        cublas = kernel_ms(lambda: torch.matmul(a, dense_b))
        results.append({"problem": problem, "kernel": "cuBLAS", "tiles": "torch.matmul",
                        "ms": cublas, "split": 1, "error": 0.0, "tflops": flops / cublas / 1e9,
                        "registers": 0, "spilled_bytes": 0})
        tiles = products.HOPPER_TILES
        if products._wgmma(torch_dtype, a.device) and group % tiles.rows == 0:
            # hopper.cu's batched kernel, also on the per-step problems (split-K).
            function = _loader.kernel("hopper", f"gather_mm_hopper_{dtype}_out_{out_dtype}")
            best = fastest_split(function, tiles, splits, (a, b, index, P, group), expected,
                                 out_dtype)
            best.update(problem=problem, kernel="gather_mm wgmma", tflops=flops / best["ms"] / 1e9,
                        tiles=f"hopper {tiles.rows}x{tiles.columns}x{tiles.depth}",
                        registers=function.num_regs, spilled_bytes=function.local_size_bytes)
            results.append(best)
        for i, tiles in enumerate(GATHER_CANDIDATES):
            if group % tiles.rows:
                continue
            function = entry(f"try{i}_gather_{dtype}_out_{out_dtype}")
            best = fastest_split(function, tiles, splits, (a, b, index, P, group), expected,
                                 out_dtype)
            if best is None:
                continue
            best.update(problem=problem, kernel="gather_mm mma", tiles=tiles.cuda(),
                        tflops=flops / best["ms"] / 1e9, registers=function.num_regs,
                        spilled_bytes=function.local_size_bytes)
            results.append(best)
    return results


def sweep_wgrad(entry, quick):
    results = []
    P, R = 4, 8
    for name, dtype, steps, N, S, width, F in wgrad_problems(quick):
        torch_dtype = getattr(torch, dtype)
        regions, keep = width // (P * R), R - S
        kc = regions * keep * P
        values = torch.randn(steps * N, kc, device="cuda").to(torch_dtype)
        x = torch.randn(steps * N, F, device="cuda").to(torch_dtype)
        index = kept_index(steps, width // P, regions, keep, "cuda")
        slot = torch.full((steps, width // P), -1, dtype=torch.int32, device="cuda")
        slot.scatter_(1, index.long(), torch.arange(index.shape[1], dtype=torch.int32,
                                                    device="cuda").expand(steps, -1).contiguous())
        expected = torch.zeros(width, F, dtype=torch.float64, device="cuda")
        for t in range(steps):
            rows = (index[t].long()[:, None] * P + torch.arange(P, device="cuda")).flatten()
            expected[rows] += (values[t * N:(t + 1) * N].double().t()
                               @ x[t * N:(t + 1) * N].double())
        problem = f"{name} {dtype}"
        flops = 2 * steps * N * kc * F
        cublas = kernel_ms(lambda: torch.matmul(values.t(), x))
        results.append({"problem": problem, "kernel": "cuBLAS", "tiles": "torch.matmul",
                        "ms": cublas, "split": 1, "error": 0.0, "tflops": flops / cublas / 1e9,
                        "registers": 0, "spilled_bytes": 0})
        shipped_rule = products.HOPPER_WGRAD_NARROW_ROWS
        try:
            for narrow_past in (10 ** 9, 0) if products._wgmma(torch_dtype, values.device) else ():
                products.HOPPER_WGRAD_NARROW_ROWS = narrow_past  # each hopper width in turn
                out = torch.zeros(width, F, device="cuda")
                products.region_wgrad(values, x, index, slot, P, R, S, steps, out)
                error = relative_error(out, expected)
                ms = kernel_ms(lambda: products.region_wgrad(values, x, index, slot, P, R, S,
                                                             steps, out))
                tiles = products.wgrad_kernel(torch_dtype, values.device, P, R, S, regions, F)[2]
                results.append({"problem": problem, "kernel": "region_wgrad wgmma",
                                "tiles": f"hopper {tiles.rows}x{tiles.columns}x{tiles.depth}",
                                "ms": ms, "split": 0, "error": error, "tflops": flops / ms / 1e9,
                                "registers": 0, "spilled_bytes": 0})
        finally:
            products.HOPPER_WGRAD_NARROW_ROWS = shipped_rule
        for i, tiles in enumerate(WGRAD_CANDIDATES):
            per_block = products.wgrad_regions_per_block(P, R, S, tiles)
            if per_block == 0:
                continue
            keep_all = S == 0  # as the backward pass runs it
            grid, block, shared = products.wgrad_geometry(
                torch_dtype, regions, F, per_block, P, R, steps, tiles,
                "keep_all" if keep_all else "shared")
            if shared > SHARED_LIMIT:
                continue
            function = entry(f"try{i}_wgrad_{'keep_all_' * keep_all}{dtype}")
            out = torch.zeros(width, F, device="cuda")
            args = (values, x, index, slot, P, R, S, steps, N, F, kc, per_block, out)

            def work():
                if grid[2] > 1:
                    out.zero_()
                _loader.launch_function(function, grid, block, args, shared)
            work()
            error = relative_error(out, expected)
            ms = kernel_ms(work)
            results.append({"problem": problem,
                            "kernel": "keep_all mma" if keep_all else "region_wgrad mma",
                            "tiles": tiles.cuda(), "ms": ms, "split": grid[2],
                            "error": error, "tflops": flops / ms / 1e9,
                            "registers": function.num_regs,
                            "spilled_bytes": function.local_size_bytes})
    return results


def main():
    quick = "--quick" in sys.argv
    source = module_source()

    def entry(name):  # the candidates, compiled with products.cu as one variant of it
        return _loader.variant_kernel("products", source, name)

    results = ([] if "--wgrad" in sys.argv else sweep_gather(entry, quick)) + sweep_wgrad(
        entry, quick)
    problems = dict.fromkeys(r["problem"] for r in results)
    for problem in problems:
        rows = [r for r in results if r["problem"] == problem]
        fastest = min(r["ms"] for r in rows if r["kernel"] != "cuBLAS")
        print(f"== {problem}")
        for r in rows:
            star = "*" if r["ms"] == fastest else " "
            print(f" {star} {r['kernel']:18s} {r['tiles']:28s} {r['ms'] * 1000:8.1f} us "
                  f"{r['tflops']:5.0f} TFLOP/s split {r['split']:2d} err {r['error']:.0e} "
                  f"regs {r['registers']:3d} spill {r['spilled_bytes']}")
    out_dir = pathlib.Path(os.environ.get("OUT", "benchmarks/results"))
    (out_dir / "tile_sweep.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
         "cupy": cupy.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
