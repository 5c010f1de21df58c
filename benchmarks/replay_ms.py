"""One layer's backward replayed as a CUDA graph (kernel_times.graph_ms: device time, no host
work), dense and coarse 50%, bfloat16 and float32, at the given shapes: for comparing two trees
run in turn on one machine (benchmarks/ab_device.sh), where the bench's host and engine time
would blur a change inside the replay.

Usage: python3 benchmarks/replay_ms.py [shape ...]   (default: xl large)
"""
import sys

import torch

from kernel_times import graph_ms, layer_state
from sparsetrain.bench.measure import method_spec, parse_shape
from sparsetrain.sparsify import build


def main() -> None:
    for name in sys.argv[1:] or ["xl", "large"]:
        shape = parse_shape(name)
        for dtype in (torch.bfloat16, torch.float32):
            state = layer_state(shape, dtype)
            for method in ("dense", "coarse"):
                ms = graph_ms(build(method_spec(method, 0.5, shape)), state)
                print(f"{name} {str(dtype).split('.')[1]} {method} {ms:.4f}")


if __name__ == "__main__":
    main()
