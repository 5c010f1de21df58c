"""Side-by-side table of bench JSON files from one machine (e.g. the committed code against a
change, run in turn): backward ms per shape, dtype and method, one column per file, and each
column's ratio to the first.

Usage: python3 benchmarks/ab_table.py NAME=FILE.json [NAME=FILE.json ...]
"""
import json
import sys


def main() -> None:
    runs = [arg.split("=", 1) for arg in sys.argv[1:]]
    tables = {}
    for name, path in runs:
        with open(path) as handle:
            for row in json.load(handle)["results"]:
                key = (row["shape"], row["dtype"], row["method"], row["sparsity"])
                tables.setdefault(key, {})[name] = row["backward_ms"]
    names = [name for name, _ in runs]
    print(f"{'shape':6} {'dtype':9} {'method':7} {'sp':>4} " + " ".join(f"{n:>9}" for n in names)
          + "  " + " ".join(f"{n + '/' + names[0]:>12}" for n in names[1:]))
    for (shape, dtype, method, sparsity), times in tables.items():
        cells = " ".join(f"{times.get(n, float('nan')):9.3f}" for n in names)
        base = times.get(names[0], float("nan"))
        ratios = " ".join(f"{times.get(n, float('nan')) / base:12.3f}" for n in names[1:])
        print(f"{shape:6} {dtype:9} {method:7} {sparsity:4.2f} {cells}  {ratios}")


if __name__ == "__main__":
    main()
