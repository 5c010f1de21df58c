"""Coarse's per-step selection made inside the product (products.select_gather_mm, which gathers
its A operand from dnet in P-wide pieces) against made on its own first (select.coarse_select
writing the step's compact form and zeroing the dropped slices) and then the plain indexed
product over the compact form (products.gather_mm): per step, then one layer's backward
replayed both ways (backward.COMPACT_BEFORE_PRODUCT_BYTES switched), rounds interleaved, all in
one process. Coarse 50% (P 4, R 8, S 4) as the bench runs it. Variants of the plain product: other
split-K, and W_hh's kept slices loaded by the copy engine (a box of P rows each).

Usage: python3 benchmarks/compact_step.py [shape ...]   (default: xl large nmt ptb)
Writes $OUT/compact_step.json (or benchmarks/results/ without $OUT) and prints two tables.
"""
import json
import os
import pathlib
import statistics
import sys

import torch

from kernel_times import graph_ms, layer_state
from sparsetrain.bench.measure import kernel_ms, method_spec, overridden, parse_shape
from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import products
from sparsetrain.kernels.select import coarse_select, zero_dropped_slices
from sparsetrain.sparsify import build

P, R, S = 4, 8, 4
ROUNDS = 3
# the plain product's W_hh slices as copy-engine boxes of P rows each (products.gather_mm_tma;
# per step only: in a replay the override would move dx onto it too)
B_BY_TMA = {"TMA_GATHER_SLICE": P}
PATHS = {"in product": {"COMPACT_BEFORE_PRODUCT_BYTES": 1 << 62},
         "compact first": {"COMPACT_BEFORE_PRODUCT_BYTES": 0}}


def step_us(hidden: int, batch: int, steps: int, dtype: torch.dtype) -> dict:
    """Microseconds per step of each piece (graphs of 10 calls)."""
    width, keep = 4 * hidden, R - S
    regions = width // (P * R)
    kc = regions * keep * P
    dnet = torch.randn(batch, width, device="cuda").to(dtype)
    w = torch.randn(width, hidden, device="cuda").to(dtype)
    values = torch.empty(batch, kc, device="cuda", dtype=dtype)
    index = torch.empty(regions, keep, device="cuda", dtype=torch.int32)
    slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
    energy = torch.empty(regions, 2, device="cuda")
    out = torch.zeros(batch, hidden, device="cuda")
    partial = torch.rand(batch // plans.COARSE_ROWS_PER_CHUNK, width // P, device="cuda")
    split = products.step_split(batch, hidden, kc, dtype, dnet.device)
    plain_split = products.step_split(batch, hidden, kc, dtype, dnet.device, plain=True)
    coarse_select(partial, dnet, P, R, S, index, slot, energy, values)  # a real selection
    flat = index.reshape(1, -1)
    all_dnet = torch.randn(steps * batch, width, device="cuda").to(dtype)
    all_slot = slot.expand(steps, -1).contiguous()
    us = {
        "select_gather_mm": kernel_ms(lambda: products.select_gather_mm(
            dnet, partial, w, P, R, S, out, split, index, slot, values, energy)),
        "coarse_select": kernel_ms(lambda: coarse_select(
            partial, dnet, P, R, S, index, slot, energy, values)),
        f"gather_mm, split {plain_split}": kernel_ms(lambda: products.gather_mm(
            values, w, flat, P, batch, out, plain_split)),
        f"gather_mm, split {plain_split // 2}": kernel_ms(lambda: products.gather_mm(
            values, w, flat, P, batch, out, max(1, plain_split // 2))),
        f"gather_mm, split {plain_split * 2}": kernel_ms(lambda: products.gather_mm(
            values, w, flat, P, batch, out, plain_split * 2)),
        # the pass after the loop that compact first makes unneeded, per step
        "zeroing / T": kernel_ms(lambda: zero_dropped_slices(all_dnet, all_slot, P, steps))
        / steps}
    reference = torch.zeros_like(out)
    products.gather_mm(values, w, flat, P, batch, reference, plain_split)
    with overridden(products, B_BY_TMA):
        us["gather_mm, B by TMA"] = kernel_ms(lambda: products.gather_mm(
            values, w, flat, P, batch, out, plain_split))
        out.zero_()
        products.gather_mm(values, w, flat, P, batch, out, plain_split)
    error = ((out - reference).norm() / reference.norm()).item()
    assert error < 1e-5, f"B by TMA: relative error {error} against cp.async"
    return {name: 1000 * ms for name, ms in us.items()}


def main() -> None:
    names = sys.argv[1:] or ["xl", "large", "nmt", "ptb"]
    result = {"device": torch.cuda.get_device_name(), "steps": {}, "replays": {}}
    for name in names:
        shape = parse_shape(name)
        for dtype in (torch.bfloat16,) + ((torch.float32,) if name == "ptb" else ()):
            key = f"{name} {str(dtype)[6:]}"
            result["steps"][key] = step_us(shape.hidden, shape.batch, shape.steps, dtype)
            state = layer_state(shape, dtype)
            sparsifier = build(method_spec("coarse", 0.5, shape))
            rounds = {path: [] for path in PATHS}
            for _ in range(ROUNDS):
                for path, settings in PATHS.items():
                    with overridden(plans, settings):
                        rounds[path].append(graph_ms(sparsifier, state))
            rounds["dense"] = [graph_ms(build(method_spec("dense", 0.5, shape)), state)]
            result["replays"][key] = rounds
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "compact_step.json").write_text(json.dumps(result, indent=1))
    for key, us in result["steps"].items():
        print(f"us per step, {key}: " + ", ".join(f"{c} {t:.2f}" for c, t in us.items()))
    print(f"\n{'replay ms':14}" + "".join(f"{p:>29}" for p in PATHS) + f"{'dense':>8}"
          + "  (old / new: the medians of in product / of each other path)")
    for key, rounds in result["replays"].items():
        medians = {p: statistics.median(rounds[p]) for p in PATHS}
        cells = ["/".join(f"{ms:.3f}" for ms in rounds[p])
                 + ("" if p == "in product" else f" {medians['in product'] / medians[p]:.3f}")
                 for p in PATHS]
        print(f"{key:14}" + "".join(f"{c:>29}" for c in cells) + f"{rounds['dense'][0]:8.3f}")


if __name__ == "__main__":
    main()
