"""bf16 coarse's per-step product over a transposed dnet (backward.COARSE_COLUMNS, v17) against
the path before it, in one process: the cell step with and without its transposed copy (row
chunks of 8, 16 and 32), the per-step product (select_gather_mm against
select_gather_mm_columns, every output compared), then one layer's backward replay of dense,
coarse on the new path and coarse on the old, in interleaved rounds.

Usage: python3 benchmarks/columns_ab.py [shape ...]   (default: xl large nmt)
Writes $OUT/columns_ab.json (or benchmarks/results/history/ without $OUT) and prints a table.
"""
import json
import os
import pathlib
import sys

import torch

from kernel_times import graph_ms, layer_state
from sparsetrain.bench.measure import SHAPES, kernel_ms, method_spec, parse_shape
from sparsetrain.kernels import backward, pointwise, products
from sparsetrain.sparsify import build

P, R, S = 4, 8, 4
ROUNDS = 3


def step_pieces(name):
    """Per-step kernel times (us) of both paths at one shape, and their outputs compared."""
    hidden, n, _, _ = SHAPES[name]
    width, keep, dtype = 4 * hidden, R - S, torch.bfloat16
    regions, kc = width // (P * R), width // (P * R) * (R - S) * P
    r = lambda *s: torch.randn(*s, device="cuda")  # noqa: E731
    cell_inputs = (r(n, hidden), r(n, hidden).to(dtype), r(n, hidden),
                   torch.rand(n, width, device="cuda").to(dtype), r(n, hidden), r(n, hidden))
    dnet = torch.empty(n, width, device="cuda", dtype=dtype)
    dnet_t = torch.empty(width, n, device="cuda", dtype=dtype)
    partials = {rows: torch.empty(pointwise.norm_shape("coarse", n, width, P, rows), device="cuda")
                for rows in (8, 16, 32)}
    w_hh = (r(width, hidden) * 0.05).to(dtype)
    split = products.step_split(n, hidden, kc, dtype, dnet.device)

    def outputs():
        return (torch.zeros(n, hidden, device="cuda"),
                torch.empty(regions, keep, device="cuda", dtype=torch.int32),
                torch.empty(width // P, device="cuda", dtype=torch.int32),
                torch.empty(n, kc, device="cuda", dtype=dtype),
                torch.empty(regions, 2, device="cuda"))

    old, new = outputs(), outputs()
    partial = partials[backward.COLUMNS_ROWS_PER_CHUNK]

    def cell(rows, transposed):
        pointwise.backward_step(*cell_inputs, dnet, partials[rows], P, rows, "coarse",
                                dnet_t=dnet_t if transposed else None)

    def product_old():
        out, index, slot, values, energy = old
        products.select_gather_mm(dnet, partial, w_hh, P, R, S, out, split, index, slot,
                                  values, energy)

    def product_new():
        out, index, slot, values, energy = new
        products.select_gather_mm_columns(dnet_t, partial, w_hh, P, R, S, out, split, index,
                                          slot, values, energy)

    cell(backward.COLUMNS_ROWS_PER_CHUNK, True)
    product_old()
    product_new()
    torch.cuda.synchronize()
    assert torch.equal(dnet_t, dnet.t()), "transposed dnet"
    for i, what in ((1, "index"), (2, "slot"), (3, "values"), (4, "energy")):
        assert torch.equal(old[i], new[i]), what
    error = ((old[0] - new[0]).norm() / old[0].norm()).item()
    assert error < 1e-5, f"per-step product differs: {error}"

    times = {}
    for _ in range(ROUNDS):
        for label, work in (("cell step + norms, 8 rows", lambda: cell(8, False)),
                            ("cell step + norms, 32 rows", lambda: cell(32, False)),
                            ("cell + transposed, 16 rows", lambda: cell(16, True)),
                            ("cell + transposed, 32 rows", lambda: cell(32, True)),
                            ("select_gather_mm", product_old),
                            ("select_gather_mm_columns", product_new)):
            times.setdefault(label, []).append(1000 * kernel_ms(work, 10))
    return times


def replays(name):
    shape = parse_shape(name)
    state = layer_state(shape, torch.bfloat16)
    configurations = [("dense", "dense", True), ("coarse columns", "coarse", True),
                      ("coarse compact", "coarse", False)]
    times = {}
    for _ in range(ROUNDS):
        for label, method, columns in configurations:
            backward.COARSE_COLUMNS = columns
            times.setdefault(label, []).append(
                graph_ms(build(method_spec(method, 0.5, shape)), state))
    backward.COARSE_COLUMNS = True
    return times


def main():
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    lines = []
    for name in sys.argv[1:] or ["xl", "large", "nmt"]:
        pieces, layer = step_pieces(name), replays(name)
        result[name] = {"us": pieces, "replay_ms": layer}
        for label, values in pieces.items():
            lines.append(f"{name:6s} {label:34s} " + " ".join(f"{v:8.2f}" for v in values) + " us")
        for label, values in layer.items():
            lines.append(f"{name:6s} replay {label:27s} " + " ".join(f"{v:8.4f}" for v in values)
                         + " ms")
    folder = pathlib.Path(os.environ.get("OUT") or "benchmarks/results/history")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "columns_ab.json").write_text(json.dumps(result, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
