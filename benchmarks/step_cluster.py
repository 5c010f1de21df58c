"""The bf16 per-step products' split-K added up in thread-block clusters first
(products.STEP_CLUSTER 4 or 8, hopper.cu cluster_add_tile) against every block adding its whole
tile into out (1), side by side in one process:

1. each product alone at the shipped split (dense's gather_mm_tma_step, coarse 50%'s
   select_gather_mm), each cluster size's out checked against a float64 reference, timed as
   graph replays of 10 calls with out's zeroing subtracted;
2. one layer's whole backward as a graph replay (kernel_times.graph_ms), dense and coarse
   50%, the cluster sizes interleaved in rounds.

Usage: python3 benchmarks/step_cluster.py [shape ...]   (default: xl large nmt)
Writes $OUT/step_cluster.json (or benchmarks/results/); prints a table last.
"""
import ctypes
import json
import os
import pathlib
import statistics
import sys

import torch

from kernel_times import graph_ms, layer_state
from sparsetrain.bench.measure import kernel_ms, method_spec, overridden, parse_shape
from sparsetrain.kernels import _loader, products
from sparsetrain.sparsify import build

CLUSTERS = (1, 4, 8)
ROUNDS = 3
P, R, S = 4, 8, 4
DENSE_ROWS = 64  # backward.DENSE_ROWS: dense's per-step product reads W_hh in 64-row runs


def _relative(out, expected):
    return ((out.double() - expected).norm() / expected.norm()).item()


def dense_step(hidden, batch):
    """(run, out, expected) of dense's per-step product s_t W_hh."""
    width = 4 * hidden
    a = torch.randn(batch, width, device="cuda").bfloat16()
    w = (torch.randn(width, hidden, device="cuda") * 0.05).bfloat16()
    index = torch.arange(width // DENSE_ROWS, device="cuda", dtype=torch.int32)[None]
    split = products.step_split(batch, hidden, width, torch.bfloat16, torch.device("cuda"))
    out = torch.zeros(batch, hidden, device="cuda")
    return (lambda: products.gather_mm(a, w, index, DENSE_ROWS, batch, out, split), out,
            a.double() @ w.double(), split)


def coarse_step(hidden, batch):
    """The same of coarse 50%'s product with its selection (select_gather_mm)."""
    width = 4 * hidden
    regions, keep = width // (P * R), R - S
    dnet = torch.randn(batch, width, device="cuda").bfloat16()
    w = (torch.randn(width, hidden, device="cuda") * 0.05).bfloat16()
    partial = torch.rand(batch // 8, width // P, device="cuda")
    split = products.step_split(batch, hidden, regions * keep * P, torch.bfloat16,
                                torch.device("cuda"))
    out = torch.zeros(batch, hidden, device="cuda")
    index = torch.empty(regions, keep, device="cuda", dtype=torch.int32)
    slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
    values = torch.empty(batch, regions * keep * P, device="cuda").bfloat16()
    energy = torch.empty(regions, 2, device="cuda")
    norms = partial.double().sum(0).view(regions, R)
    kept = norms.argsort(dim=-1, descending=True, stable=True)[:, :keep].sort(-1).values
    columns = ((kept + torch.arange(regions, device="cuda")[:, None] * R)[..., None] * P
               + torch.arange(P, device="cuda")).flatten()
    expected = dnet.double()[:, columns] @ w.double()[columns]
    return (lambda: products.select_gather_mm(dnet, partial, w, P, R, S, out, split, index,
                                              slot, values, energy), out, expected, split)


def resident_blocks(hidden, batch):
    """How many blocks of each per-step entry the GPU holds at once (the driver's occupancy
    calculators: blocks an SM times SMs, or whole clusters times their size), against the
    blocks its grid has, at this shape's coarse 50% split."""
    kc = 4 * hidden // 2
    split = products.step_split(batch, hidden, kc, torch.bfloat16, torch.device("cuda"))
    grid = products.gather_geometry(torch.bfloat16, batch, kc, hidden, P, split,
                                    products.HOPPER_TILES)[0]
    driver = _loader._driver()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []
    for prefix, threads, shared in (
            ("select_gather_mm_hopper", 256,
             products.gather_shared_bytes(torch.bfloat16, kc, P, split, products.HOPPER_TILES)),
            ("gather_mm_tma_step", products.TMA_THREADS, products.RING_BYTES
             + products.gather_shared_bytes(torch.bfloat16, kc, 64, split,
                                            products.TMA_STEP_TILES))):
        for cluster in CLUSTERS:
            infix = f"_cluster{cluster}" if cluster > 1 else ""
            suffix = "_out_float32" if prefix.startswith("gather") else ""
            function = _loader.kernel("hopper", f"{prefix}{infix}_bfloat16{suffix}")
            _loader._allow_shared(function, 0, shared)
            count = ctypes.c_int()
            if cluster == 1:
                status = driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                    ctypes.byref(count), ctypes.c_void_p(function.kernel.ptr), threads,
                    ctypes.c_size_t(shared))
                resident = count.value * sms
            else:
                config = _loader._LaunchConfig((ctypes.c_uint * 3)(*grid),
                                               (ctypes.c_uint * 3)(threads, 1, 1), shared,
                                               None, None, 0)
                status = driver.cuOccupancyMaxActiveClusters(
                    ctypes.byref(count), ctypes.c_void_p(function.kernel.ptr),
                    ctypes.byref(config))
                resident = count.value * cluster
            rows.append({"entry": prefix, "cluster": cluster, "status": status,
                         "resident_blocks": resident, "grid_blocks": grid[0] * grid[1] * grid[2]})
    return rows


def product_rows(name, hidden, batch):
    rows = []
    for kind, build_step in (("dense", dense_step), ("coarse", coarse_step)):
        run, out, expected, split = build_step(hidden, batch)
        times = {cluster: [] for cluster in CLUSTERS}
        errors = {}
        for cluster in CLUSTERS:
            with overridden(products, {"STEP_CLUSTER": cluster}):
                out.zero_()
                run()
                torch.cuda.synchronize()
                errors[cluster] = _relative(out, expected)
        for _ in range(ROUNDS):
            for cluster in CLUSTERS:
                with overridden(products, {"STEP_CLUSTER": cluster}):
                    ms = kernel_ms(lambda: (out.zero_(), run()))
                times[cluster].append(1000 * (ms - kernel_ms(out.zero_)))
        for cluster in CLUSTERS:
            rows.append({"shape": name, "product": kind, "split": split, "cluster": cluster,
                         "entry": products.step_cluster_entry(split) if cluster > 1 else "",
                         "us_rounds": times[cluster],
                         "us": statistics.median(times[cluster]),
                         "relative_error": errors[cluster]})
    return rows


def replay_rows(name):
    shape = parse_shape(name)
    state = layer_state(shape, torch.bfloat16)
    rows = []
    for method in ("dense", "coarse"):
        sparsifier = build(method_spec(method, 0.5, shape))
        times = {cluster: [] for cluster in CLUSTERS}
        for _ in range(ROUNDS):
            for cluster in times:
                with overridden(products, {"STEP_CLUSTER": cluster}):
                    times[cluster].append(graph_ms(sparsifier, state))
        for cluster, values in times.items():
            rows.append({"shape": name, "method": method, "cluster": cluster,
                         "ms_rounds": values, "ms": statistics.median(values)})
    return rows


def main():
    names = sys.argv[1:] or ["xl", "large", "nmt"]
    result = {"device": torch.cuda.get_device_name(), "products": [], "replays": [],
              "resident": {}}
    for name in names:
        shape = parse_shape(name)
        result["resident"][name] = resident_blocks(shape.hidden, shape.batch)
        result["products"] += product_rows(name, shape.hidden, shape.batch)
        result["replays"] += replay_rows(name)
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "step_cluster.json").write_text(json.dumps(result, indent=1))
    print(f"device: {result['device']}")
    for name, rows in result["resident"].items():
        for row in rows:
            print(f"{name:5} {row['entry']:24} cluster {row['cluster']} resident blocks "
                  f"{row['resident_blocks']:4d} of the grid's {row['grid_blocks']:4d} "
                  f"(status {row['status']})")
    for row in result["products"]:
        print(f"{row['shape']:5} {row['product']:6} split {row['split']:2d} cluster "
              f"{row['cluster']} {row['us']:7.2f} us {row['us_rounds']}  "
              f"err {row['relative_error']:.1e}")
    for row in result["replays"]:
        print(f"{row['shape']:5} {row['method']:6} backward replay cluster {row['cluster']} "
              f"{row['ms']:.4f} ms {[round(v, 4) for v in row['ms_rounds']]}")


if __name__ == "__main__":
    main()
