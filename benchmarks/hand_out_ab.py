"""The backward's gradients handed out in its graph's buffers (shipped, v15) against copied out
of them into fresh tensors (v14, by one multi-tensor copy), side by side in one process: the bench's backward and
forward+backward of dense and coarse 50%, the two ways' calls interleaved in rounds.

Usage: python3 benchmarks/hand_out_ab.py [shape ...]   (default: large xl ptb nmt; float32
and bfloat16). Writes $OUT or benchmarks/results/hand_out_ab.json; prints a table last.
"""
import dataclasses
import json
import os
import statistics
import sys

import torch

from sparsetrain.bench.measure import DTYPES, Configuration, _interleaved, parse_shape
from sparsetrain.kernels import graphs

KINDS = ("backward", "train_step")


def _copied_out(captured):
    """v14's: every output copied into fresh tensors, so that nothing ever holds the graph."""
    names, results = zip(*graphs._tensors(captured.outputs))
    fresh = [torch.empty_like(tensor) for tensor in results]
    torch._foreach_copy_(fresh, list(results))
    return dataclasses.replace(captured.outputs, **dict(zip(names, fresh)))


class CopyingOut:
    """A configuration whose backwards copy their gradients out of the graph."""

    def __init__(self, setup: Configuration) -> None:
        self.setup = setup

    def _copying(self, kind: str) -> None:
        shipped = graphs._Captured.hand_out
        graphs._Captured.hand_out = _copied_out
        try:
            getattr(self.setup, kind)()
        finally:
            graphs._Captured.hand_out = shipped

    def backward(self) -> None:
        self._copying("backward")

    def train_step(self) -> None:
        self._copying("train_step")


def main() -> None:
    names = sys.argv[1:] or ["large", "xl", "ptb", "nmt"]
    graphs.CACHED_GRAPHS = 64  # all of one shape's graphs stay captured through the rounds
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    for name in names:
        shape = parse_shape(name)
        for dtype_name, dtype in DTYPES.items():
            for method in ("dense", "coarse"):
                handed = Configuration(method, 0.5, shape, dtype)
                copying = CopyingOut(Configuration(method, 0.5, shape, dtype))
                setups = [copying, handed]
                times = {kind: _interleaved(setups, kind, 5, 10, 10) for kind in KINDS}
                row = {"shape": name, "dtype": dtype_name, "method": method}
                for kind in KINDS:
                    copied_ms, handed_ms = (statistics.median(t for r in runs for t in r)
                                            for runs in times[kind])
                    row[kind] = {"copied_out_ms": copied_ms, "handed_out_ms": handed_ms,
                                 "ratio": handed_ms / copied_ms}
                result["rows"].append(row)
                del handed, copying, setups
                graphs._graphs.clear()
    target = os.path.join(os.environ.get("OUT", "benchmarks/results"), "hand_out_ab.json")
    with open(target, "w") as handle:
        json.dump(result, handle, indent=1)
    print(result["device"])
    print(f"{'shape':6} {'dtype':9} {'method':7} {'bwd copied':>10} {'handed':>8} {'ratio':>6}"
          f" {'f+b copied':>10} {'handed':>8} {'ratio':>6}")
    for row in result["rows"]:
        cells = " ".join(f"{row[k]['copied_out_ms']:10.3f} {row[k]['handed_out_ms']:8.3f} "
                         f"{row[k]['ratio']:6.3f}" for k in KINDS)
        print(f"{row['shape']:6} {row['dtype']:9} {row['method']:7} {cells}")


if __name__ == "__main__":
    main()
