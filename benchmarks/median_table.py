"""The README's bench table from several bench JSON files of one machine and code: each cell
the median of the runs' medians, the range in brackets.

Usage: python3 benchmarks/median_table.py FILE.json FILE.json ...
"""
import json
import statistics
import sys

METHOD_NAMES = {"cudnn": "cuDNN"}
SHAPE_ORDER = ["large", "xl", "ptb", "nmt"]  # the targets' shapes first; others after, as run


def cell(values: list[float], suffix: str = "") -> str:
    return (f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
            f"{suffix}")


def main() -> None:
    runs = []
    for path in sys.argv[1:]:
        with open(path) as handle:
            runs.append(json.load(handle)["results"])
    print("| shape | dtype | method | backward ms | fwd+bwd ms | vs our dense | vs cuDNN |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    order = [(r["shape"], r["dtype"], r["method"], r["sparsity"]) for r in runs[0]]
    shapes = list(dict.fromkeys(key[0] for key in order))
    for shape in sorted(shapes, key=lambda name: (SHAPE_ORDER + shapes).index(name)):
        for key in (k for k in order if k[0] == shape):
            rows = [next(r for r in results
                         if (r["shape"], r["dtype"], r["method"], r["sparsity"]) == key)
                    for results in runs]
            method = METHOD_NAMES.get(key[2], key[2]) + (f" {key[3]:g}" if key[3] else "")
            print(f"| {key[0]} | {key[1]} | {method} "
                  f"| {cell([r['backward_ms'] for r in rows])} "
                  f"| {statistics.median(r['train_ms'] for r in rows):.2f} "
                  f"| {cell([r['speedup_vs_dense'] for r in rows], 'x')} "
                  f"| {cell([r['speedup_vs_cudnn'] for r in rows], 'x')} |")


if __name__ == "__main__":
    main()
