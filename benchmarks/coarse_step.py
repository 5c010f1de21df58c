"""Coarse's cell step fused with its selection (pointwise.backward_step_coarse) against the
cell step that only sums partial norms (pointwise.backward_step, layout "coarse") followed by
select.coarse_select, which the fused step replaces where coarse's products run as dense's,
per step at the bench shapes, coarse 50% (P 4, R 8, S 4); and the fused kernel's variants: row
shares per cluster (the cluster size, compiled here from the shipped source with another
ROW_SHARES) and threads per block. Each variant is checked against the shipped one.

Usage: python3 benchmarks/coarse_step.py [shape ...]   (default: large xl ptb nmt)
       python3 benchmarks/coarse_step.py --once SHAPE   (the shipped fused step, bf16, 3 times:
       for a profiler such as ncu)
Writes $OUT/coarse_step.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import functools
import json
import os
import pathlib
import sys

import torch

from sparsetrain.bench.measure import SHAPES, kernel_ms
from sparsetrain.kernels import _loader, pointwise, select

P, R, S = 4, 8, 4


@functools.cache  # source_text reads the files
def variant(shares: int, dtype_name: str):
    text = _loader.source_text("pointwise").replace(
        f"#define ROW_SHARES {pointwise.FUSED_COARSE_ROW_SHARES}", f"#define ROW_SHARES {shares}")
    return _loader.variant_kernel("pointwise", text, f"lstm_backward_step_coarse_{dtype_name}")


def launch_variant(shares, threads, args, n, hidden, dtype):
    units = pointwise.fused_coarse_units(P, R)
    function = variant(shares, _loader.DTYPE_NAMES[dtype])
    shared = pointwise.fused_coarse_shared_bytes(n, P, R, dtype, threads, shares)
    _loader.launch_function(function, (hidden // units, shares), (units, threads // units), args,
                            shared)


def once(name):
    hidden, n, _, _ = SHAPES[name]
    width, keep = 4 * hidden, R - S
    regions, dtype = width // (P * R), torch.bfloat16
    r = lambda *s: torch.randn(*s, device="cuda")  # noqa: E731
    args = (r(n, hidden), r(n, hidden).to(dtype), r(n, hidden),
            torch.rand(n, width, device="cuda").to(dtype), r(n, hidden), r(n, hidden),
            torch.empty(n, width, device="cuda", dtype=dtype), P, R, S,
            torch.empty(regions, keep, device="cuda", dtype=torch.int32),
            torch.empty(width // P, device="cuda", dtype=torch.int32),
            torch.empty(regions, 2, device="cuda"))
    for _ in range(3):
        pointwise.backward_step_coarse(*args)
    torch.cuda.synchronize()


def main():
    if sys.argv[1:2] == ["--once"]:
        return once(sys.argv[2])
    results = []
    for name in sys.argv[1:] or ["large", "xl", "ptb", "nmt"]:
        hidden, n, _, _ = SHAPES[name]
        width, keep = 4 * hidden, R - S
        regions = width // (P * R)
        for dtype in (torch.bfloat16, torch.float32):
            r = lambda *s: torch.randn(*s, device="cuda")  # noqa: E731
            dh, grad, dc = r(n, hidden), r(n, hidden).to(dtype), r(n, hidden)
            gates = torch.rand(n, width, device="cuda").to(dtype)
            c, c_prev = r(n, hidden), r(n, hidden)
            dnet = torch.empty(n, width, device="cuda", dtype=dtype)
            partial = torch.empty(n // 8, width // P, device="cuda")
            index = torch.empty(regions, keep, device="cuda", dtype=torch.int32)
            slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
            energy = torch.empty(regions, 2, device="cuda")
            row = {"shape": name, "dtype": _loader.DTYPE_NAMES[dtype], "us": {}}

            def unfused():
                pointwise.backward_step(dh, grad, dc, gates, c, c_prev, dnet, partial, P, 8,
                                        "coarse", True)
                select.coarse_select(partial, dnet, P, R, S, index, slot, energy)
            row["us"]["cell step + norms"] = 1000 * kernel_ms(lambda: pointwise.backward_step(
                dh, grad, dc, gates, c, c_prev, dnet, partial, P, 8, "coarse", True))
            row["us"]["cell step + coarse_select"] = 1000 * kernel_ms(unfused)
            row["us"]["fused (shipped)"] = 1000 * kernel_ms(lambda: pointwise.backward_step_coarse(
                dh, grad, dc, gates, c, c_prev, dnet, P, R, S, index, slot, energy))
            dc_start = dc.clone()
            pointwise.backward_step_coarse(dh, grad, dc, gates, c, c_prev, dnet, P, R, S,
                                           index, slot, energy)
            shipped = (dnet.clone(), index.clone(), slot.clone())
            args = (dh, grad, dc, gates, c, c_prev, dnet, n, hidden, P, R, keep, index, slot,
                    energy)
            for shares in (4, 8):
                for threads in (64, 128, 256):
                    key = f"fused shares {shares} threads {threads}"
                    dc.copy_(dc_start)
                    launch_variant(shares, threads, args, n, hidden, dtype)
                    same = all(torch.equal(a, b) for a, b in zip((dnet, index, slot), shipped))
                    us = 1000 * kernel_ms(lambda: launch_variant(shares, threads, args, n,
                                                                 hidden, dtype))
                    row["us"][key] = us if same else float("nan")
            results.append(row)
            best = min((v, k) for k, v in row["us"].items() if k.startswith("fused s"))
            print(f"{name:5} {row['dtype']:8} cell+norms {row['us']['cell step + norms']:6.1f}"
                  f" us, +coarse_select {row['us']['cell step + coarse_select']:6.1f} us, fused "
                  f"{row['us']['fused (shipped)']:6.1f} us, best {best[0]:6.1f} us ({best[1]})",
                  flush=True)
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "coarse_step.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "results": results}, indent=1))
    for row in results:
        print(row["shape"], row["dtype"], " ".join(f"{k}={v:.1f}" for k, v in row["us"].items()))


if __name__ == "__main__":
    main()
