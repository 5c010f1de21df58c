"""Coarse's per-step product with its selection (select_gather_mm, bf16) of another tree (OLD:
a `git archive` of an earlier commit, as ab_device.sh makes it in .ab/old) against this tree's,
in one process: out, index, slot, values and energy compared on the same random step, then each
timed as graph replays of 10 calls (out zeroed before each, the zeroing's time subtracted);
this tree's also with no compact values written (values = None), with the partial norms of
32-row chunks instead of the cell step's 8 (what deciding the regions costs), and zeroing
dnet's dropped slices (zero_dropped).

Usage: python3 benchmarks/select_values_ab.py OLD [shape ...]   (default: xl large nmt ptb)
"""
import pathlib
import sys

import torch

from sparsetrain.bench.measure import kernel_ms, parse_shape
from sparsetrain.kernels import _loader, products
from sparsetrain.kernels.backward import COARSE_ROWS_PER_CHUNK

P, R, S = 4, 8, 4


def old_kernel(tree: pathlib.Path, module: str, name: str):
    kernels = tree / "sparsetrain" / "kernels"
    text = ((kernels / "common.cuh").read_text() + "\n" + (kernels / f"{module}.cu").read_text())
    return _loader.variant_kernel(module, text, name)


def main():
    tree = pathlib.Path(sys.argv[1])
    print(f"device: {torch.cuda.get_device_name()}")
    for name in sys.argv[2:] or ["xl", "large", "nmt", "ptb"]:
        shape = parse_shape(name)
        n, hidden, width = shape.batch, shape.hidden, 4 * shape.hidden
        regions, keep = width // (P * R), R - S
        kc = regions * keep * P
        dnet = torch.randn(n, width, device="cuda").bfloat16()
        w_hh = torch.randn(width, hidden, device="cuda").bfloat16()
        partials = {rows: torch.rand(n // rows, width // P, device="cuda")
                    for rows in (COARSE_ROWS_PER_CHUNK, 32)}
        out = torch.zeros(n, hidden, device="cuda")
        index = torch.empty(regions, keep, device="cuda", dtype=torch.int32)
        slot = torch.empty(width // P, device="cuda", dtype=torch.int32)
        values = torch.empty(n, kc, device="cuda").bfloat16()
        energy = torch.empty(regions, 2, device="cuda")
        split = products.step_split(n, hidden, kc, torch.bfloat16, dnet.device)
        module, prefix, tiles = products.gather_kernel(n, torch.bfloat16, dnet.device)
        grid, block, shared = products.select_geometry(torch.bfloat16, n, kc, hidden, P, R, S,
                                                       split, tiles)
        old = old_kernel(tree, module, f"select_{prefix}_bfloat16")

        def launch(function, partial, values_out, zero=0):
            arguments = (dnet, w_hh, P, out, n, kc, hidden, width, partial, partial.shape[0],
                         R, S, index, slot, energy, values_out)
            if function is None:  # this tree's entry takes whether to zero dnet's dropped slices
                _loader.launch(module, f"select_{prefix}_bfloat16", grid, block,
                               arguments + (zero,), shared_mem=shared)
            else:
                _loader.launch_function(function, grid, block, arguments, shared_mem=shared)

        runs = {
            "old": lambda: launch(old, partials[COARSE_ROWS_PER_CHUNK], values),
            "new": lambda: launch(None, partials[COARSE_ROWS_PER_CHUNK], values),
            "new, no values": lambda: launch(None, partials[COARSE_ROWS_PER_CHUNK], None),
            "new, 32-row chunks": lambda: launch(None, partials[32], values),
            "new, zeroing dnet": lambda: launch(None, partials[COARSE_ROWS_PER_CHUNK], values, 1),
        }
        outputs = {}
        zeroing = kernel_ms(out.zero_)
        for label, run in runs.items():
            values.fill_(float("nan"))
            out.zero_()
            run()
            torch.cuda.synchronize()
            outputs[label] = (out.clone(), index.clone(), slot.clone(), values.clone(),
                              energy.clone())
            us = 1000 * (kernel_ms(lambda: (out.zero_(), run())) - zeroing)
            reference = outputs["old"]
            error = ((outputs[label][0] - reference[0]).norm() / reference[0].norm()).item()
            if label in ("old", "new"):  # the others decide or write otherwise by design
                exact = all(torch.equal(a, b) for a, b in zip(outputs[label][1:], reference[1:]))
                check = "selection and values same as old" if exact else "DIFFER from old"
            else:
                check = ""
            print(f"{name:5} split {split:2} {label:19} {us:6.2f} us  out rel. diff "
                  f"{error:.1e} {check}")


if __name__ == "__main__":
    main()
