"""Side-by-side table of bench JSON files from one machine (e.g. the committed code against a
change, run in turn): backward ms per shape, dtype and method, one column per file, and each
column's ratio to the first.

Usage: python3 benchmarks/ab_table.py [--field train_ms] NAME=FILE.json [NAME=FILE.json ...]
(backward_ms unless --field names another of the rows' times)
"""
import json
import sys


def main() -> None:
    args = sys.argv[1:]
    field = "backward_ms"
    if args[:1] == ["--field"]:
        field, args = args[1], args[2:]
    runs = [arg.split("=", 1) for arg in args]
    tables = {}
    for name, path in runs:
        with open(path) as handle:
            for row in json.load(handle)["results"]:
                key = (row["shape"], row["dtype"], row["method"], row["sparsity"])
                tables.setdefault(key, {})[name] = row[field]
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
