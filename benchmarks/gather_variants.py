"""Tilings of hopper.cu's gather_mm_hopper beside the shipped ones, each checked against the
shipped kernel's output on the same random inputs, then timed (kernel_ms): coarse 50%'s
per-step product with its selection (select entry, split-K as given), the plain per-step
product over a step's compact form (float32 out, split-K as given: xl's path since v20) and its
dx (the plain entry, bf16 out, over all T*N rows, index per step), at xl and large, bf16.

A variant is (WGS, WG_N, STAGES, BLOCKS): WGS x WG_N warpgroups of 64 x 128 (tile 64 WGS x
128 WG_N), STAGES tiles in flight, registers capped for BLOCKS blocks an SM. The shipped
entries are (2, 1, 3, 2). The variants' entries are compiled after hopper.cu's text, as a
variant of that module (_loader.variant_kernel).

Usage: python3 benchmarks/gather_variants.py [shape ...]   (default: xl large)
Writes $OUT/gather_variants.json (or benchmarks/results/).
"""
import functools
import json
import os
import pathlib
import sys

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms
from sparsetrain.kernels import _loader, products
from sparsetrain.kernels.products import Tiles, gather_shared_bytes

VARIANTS = [(2, 1, 3, 2), (2, 1, 4, 1), (4, 1, 3, 1), (2, 2, 3, 1), (2, 2, 4, 1), (1, 1, 3, 3)]
P, R, S = 4, 8, 4


def _name(kind: str, variant: tuple) -> str:
    return f"{kind}_variant_" + "_".join(map(str, variant))


def _entries() -> str:
    text = []
    for variant in VARIANTS:
        wgs, wg_n, stages, blocks = variant
        text.append(f"""
extern "C" __global__ void __launch_bounds__({128 * wgs * wg_n}, {blocks})
{_name('select', variant)}(
    const bf16* dnet, const bf16* B, int P, float* out, int M, int Kc, int F, int width,
    const float* partial, int chunks, int R, int S, int* index, int* slot, float* energy,
    bf16* values) {{
    gather_mm_hopper<float, {wgs}, {wg_n}, {stages}, true>(dnet, B, nullptr, P, M, out, M, Kc,
        F, width, step_selection(partial, chunks, width / P, R, R - S, index, slot, energy,
                                 values));
}}
extern "C" __global__ void __launch_bounds__({128 * wgs * wg_n}, {blocks})
{_name('plain_step', variant)}(
    const bf16* A, const bf16* B, const int* index, int P, int rows_per_group, float* out,
    int M, int Kc, int F) {{
    gather_mm_hopper<float, {wgs}, {wg_n}, {stages}, false>(A, B, index, P, rows_per_group, out,
        M, Kc, F, Kc, StepSelection{{}});
}}
extern "C" __global__ void __launch_bounds__({128 * wgs * wg_n}, {blocks})
{_name('gather', variant)}(
    const bf16* A, const bf16* B, const int* index, int P, int rows_per_group, bf16* out,
    int M, int Kc, int F) {{
    gather_mm_hopper<bf16, {wgs}, {wg_n}, {stages}, false>(A, B, index, P, rows_per_group, out,
        M, Kc, F, Kc, StepSelection{{}});
}}""")
    return "\n".join(text)


@functools.cache  # source_text reads the files
def _variant(kind: str, variant: tuple):
    text = _loader.source_text("hopper") + _entries()
    return _loader.variant_kernel("hopper", text, _name(kind, variant))


def _geometry(variant, m, kc, features, split):
    wgs, wg_n, stages, _ = variant
    tiles = Tiles(64 * wgs, 128 * wg_n, 64, 4 * wgs * wg_n, 1, stages, padded=False)
    grid = (-(-features // tiles.columns), m // tiles.rows, split)
    return grid, (tiles.threads,), gather_shared_bytes(torch.bfloat16, kc, P, split, tiles)


def _relative(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def step_rows(hidden, batch, split):
    width = 4 * hidden
    regions, keep = width // (P * R), R - S
    kc = regions * keep * P
    dnet = torch.randn(batch, width, device="cuda").bfloat16()
    w = (torch.randn(width, hidden, device="cuda") * 0.05).bfloat16()
    partial = torch.rand(batch // 8, width // P, device="cuda")
    outputs = {}
    rows = []
    for variant in VARIANTS:
        if batch % (64 * variant[0]):
            continue
        out = torch.zeros(batch, hidden, device="cuda")
        index = torch.full((regions, keep), -7, device="cuda", dtype=torch.int32)
        slot = torch.full((width // P,), -7, device="cuda", dtype=torch.int32)
        values = torch.full((batch, kc), float("nan"), device="cuda").bfloat16()
        energy = torch.full((regions, 2), float("nan"), device="cuda")
        grid, block, shared = _geometry(variant, batch, kc, hidden, split)
        args = (dnet, w, P, out, batch, kc, hidden, width, partial, batch // 8, R, S, index,
                slot, energy, values)

        def work():
            _loader.launch_function(_variant("select", variant), grid, block, args, shared)

        work()
        torch.cuda.synchronize()
        outputs[variant] = (out.clone(), index.clone(), slot.clone(), values.clone(),
                            energy.clone())
        ms = kernel_ms(lambda: (out.zero_(), work()))
        zero_ms = kernel_ms(lambda: out.zero_())
        rows.append({"variant": variant, "split": split, "us": 1000 * (ms - zero_ms)})
    reference = outputs[VARIANTS[0]]
    for row in rows:
        mine = outputs[row["variant"]]
        row["out_error"] = _relative(mine[0], reference[0])
        row["selection_equal"] = all(torch.equal(a, b) for a, b in zip(mine[1:], reference[1:]))
    return rows


def gather_rows(kind, hidden, batch, steps, split):
    """The plain entry over `steps` steps' compact forms (an index per step). kind
    "plain_step": one step's product into zeroed float32 out, split-K as given (the zeroing's
    time subtracted); "gather": dx over all steps, bf16 out."""
    width = 4 * hidden
    regions, keep = width // (P * R), R - S
    kc = regions * keep * P
    m = steps * batch
    values = torch.randn(m, kc, device="cuda").bfloat16()
    w = (torch.randn(width, hidden, device="cuda") * 0.05).bfloat16()
    kept = torch.rand(steps, regions, R, device="cuda").argsort(-1)[..., :keep].sort(-1).values
    index = (kept + torch.arange(regions, device="cuda")[:, None] * R).reshape(steps, -1).int()
    step = kind == "plain_step"
    outputs, rows = {}, []
    for variant in VARIANTS:
        if batch % (64 * variant[0]):
            continue
        out = (torch.zeros(m, hidden, device="cuda") if step
               else torch.full((m, hidden), float("nan"), device="cuda").bfloat16())
        grid, block, shared = _geometry(variant, m, kc, hidden, split)
        args = (values, w, index, P, batch, out, m, kc, hidden)

        def work():
            _loader.launch_function(_variant(kind, variant), grid, block, args, shared)

        work()
        torch.cuda.synchronize()
        outputs[variant] = out.clone()
        if step:
            us = 1000 * (kernel_ms(lambda: (out.zero_(), work())) - kernel_ms(out.zero_))
            rows.append({"variant": variant, "split": split, "us": us})
        else:
            rows.append({"variant": variant, "us": 1000 * kernel_ms(work, launches=3)})
    for row in rows:
        row["out_error"] = _relative(outputs[row["variant"]], outputs[VARIANTS[0]])
    return rows


def main():
    names = sys.argv[1:] or ["xl", "large"]
    result = {"device": torch.cuda.get_device_name(), "shapes": {}}
    for name in names:
        hidden, batch, steps, _ = SHAPES[name]
        kc = 4 * hidden // 2
        shipped_split = products.step_split(batch, hidden, kc, torch.bfloat16,
                                            torch.device("cuda"))
        step = [row for split in sorted({shipped_split, 8, 16})
                for row in step_rows(hidden, batch, split)]
        plain = [row for split in sorted({shipped_split // 2, shipped_split, 2 * shipped_split})
                 for row in gather_rows("plain_step", hidden, batch, 1, split)]
        dx = gather_rows("gather", hidden, batch, steps, 1)
        result["shapes"][name] = {"step": step, "plain step": plain, "dx": dx}
        for row in step:
            print(f"{name:5} step  {str(row['variant']):14} split {row['split']:2d} "
                  f"{row['us']:8.1f} us  err {row['out_error']:.1e} "
                  f"selection {'same' if row['selection_equal'] else 'DIFFERS'}")
        for row in plain:
            print(f"{name:5} plain {str(row['variant']):14} split {row['split']:2d} "
                  f"{row['us']:8.1f} us  err {row['out_error']:.1e}")
        for row in dx:
            print(f"{name:5} dx    {str(row['variant']):14}          {row['us']:8.1f} us  "
                  f"err {row['out_error']:.1e}")
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "gather_variants.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
