"""fine_select of another tree (OLD: a `git archive` of an earlier commit, as ab_device.sh
makes it in .ab/old) against this tree's, in one process: each one's dnet, index and energy
compared on the same random step, then each timed as graph replays of 10 calls (dnet restored
from a copy before each call, the copy's time subtracted); then one layer's backward replay,
dense against fine 50%, with this tree's kernels (kernel_times.graph_ms).

Usage: python3 benchmarks/fine_select_ab.py OLD [shape ...]   (default: xl large nmt ptb)
"""
import pathlib
import sys

import torch

from kernel_times import graph_ms, layer_state
from sparsetrain.bench.measure import kernel_ms, method_spec, parse_shape
from sparsetrain.kernels import _loader, select
from sparsetrain.sparsify import build

My, Mx = 8, 4


def old_kernel(tree: pathlib.Path):
    kernels = tree / "sparsetrain" / "kernels"
    text = ((kernels / "common.cuh").read_text() + "\n" + (kernels / "select.cu").read_text())
    return _loader.variant_kernel("select", text, "fine_select_bfloat16")


def step(hidden, batch):
    width, blocks = 4 * hidden, batch // My
    K = batch // 16  # the bench's fine 50%
    slices = width // Mx
    dnet = torch.randn(batch, width, device="cuda").bfloat16()
    norms = torch.rand(slices, blocks, device="cuda")
    return dnet, norms, K


def main():
    tree = pathlib.Path(sys.argv[1])
    old = old_kernel(tree)
    print(f"device: {torch.cuda.get_device_name()}")
    for name in sys.argv[2:] or ["xl", "large", "nmt", "ptb"]:
        shape = parse_shape(name)
        source, norms, K = step(shape.hidden, shape.batch)
        n, width = source.shape
        blocks, slices = n // My, width // Mx
        dnet = source.clone()
        index = torch.empty(slices, blocks - K, device="cuda", dtype=torch.int32)
        values = torch.empty(slices, blocks - K, My, Mx, device="cuda").bfloat16()
        energy = torch.empty(slices, 2, device="cuda")

        def run_old():
            _loader.launch_function(old, (slices,), (128,), (norms, dnet, n, width, My, Mx, K,
                                                             index, values, energy))

        def run_new(with_values):
            select.fine_select(norms, dnet, My, Mx, K, index, values if with_values else None,
                               energy)

        outputs = {}
        for label, run in (("old", run_old), ("new", lambda: run_new(True)),
                           ("new, no values", lambda: run_new(False))):
            dnet.copy_(source)
            run()
            torch.cuda.synchronize()
            outputs[label] = (dnet.clone(), index.clone(), energy.clone())
            restore = kernel_ms(lambda: dnet.copy_(source))
            us = 1000 * (kernel_ms(lambda: (dnet.copy_(source), run())) - restore)
            same = all(torch.equal(a, b) for a, b in zip(outputs[label], outputs["old"]))
            print(f"{name:5} fine_select {label:15} {us:6.2f} us  "
                  f"{'same as old' if same else 'DIFFERS from old'}")
        state = layer_state(shape, torch.bfloat16)
        for method in ("dense", "fine"):
            ms = graph_ms(build(method_spec(method, 0.5, shape)), state)
            print(f"{name:5} backward replay {method:5} {ms:.4f} ms")


if __name__ == "__main__":
    main()
