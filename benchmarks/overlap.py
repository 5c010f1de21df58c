"""How many chunks of steps the batched products (dx, dW_ih, dW_hh, db) should start in, on
side streams beside the recurrence (backward.BATCHED_CHUNKS): one layer's backward replayed as
a CUDA graph (device ms), dense and coarse 50%, bf16 and float32, at the bench shapes. One
chunk starts them all after the last step, so nothing overlaps the recurrence.

Usage: python3 benchmarks/overlap.py [shape ...]   (default: large xl nmt ptb)
Writes $OUT/overlap.json (or benchmarks/results/ without $OUT) and prints a table.
"""
import json
import os
import pathlib
import sys

import torch

from kernel_times import graph_ms, layer_state
from sparsetrain.bench.measure import method_spec, parse_shape
from sparsetrain.kernels import backward as plans
from sparsetrain.sparsify import build

CHUNKS = (1, 2, 4, 7)


def main():
    results = []
    shipped = plans.BATCHED_CHUNKS
    try:
        for shape_name in sys.argv[1:] or ["large", "xl", "nmt", "ptb"]:
            shape = parse_shape(shape_name)
            for dtype in (torch.bfloat16, torch.float32):
                state = layer_state(shape, dtype)
                for method in ("dense", "coarse"):
                    sparsifier = build(method_spec(method, 0.5, shape))
                    row = {"shape": shape.name, "dtype": str(dtype)[6:], "method": method}
                    for chunks in CHUNKS:
                        plans.BATCHED_CHUNKS = chunks
                        row[str(chunks)] = graph_ms(sparsifier, state)
                    results.append(row)
    finally:
        plans.BATCHED_CHUNKS = shipped
    out_dir = pathlib.Path(os.environ.get("OUT", pathlib.Path(__file__).parent / "results"))
    (out_dir / "overlap.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "chunks": CHUNKS, "results": results},
        indent=1))
    print(f"{'shape':6} {'dtype':9} {'method':7} " + " ".join(f"{c:>3} chunks" for c in CHUNKS))
    for r in results:
        print(f"{r['shape']:6} {r['dtype']:9} {r['method']:7} "
              + " ".join(f"{r[str(c)]:7.3f} ms" for c in CHUNKS))


if __name__ == "__main__":
    main()
