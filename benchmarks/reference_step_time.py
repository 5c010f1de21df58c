"""Forward+backward ms per training step of the torch reference LSTM, next to torch.nn.LSTM.

    python benchmarks/reference_step_time.py --device cuda --out benchmarks/results/reference_step_h100.json

Shape: 2 layers of 512 units, batch 64, 35 steps (the paper's PTB model). The loss is a fixed
random projection of the output, so every gradient path runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from sparsetrain.nn import LSTM

METHODS = {
    "dense": {"name": "dense"},
    "coarse R=8 S=4": {"name": "coarse", "R": 8, "S": 4},
    "fine K=4": {"name": "fine", "K": 4},
    "meprop keep=0.5": {"name": "meprop", "keep": 0.5},
}


def step_ms(module, x, weight, device, repeats, warmup):
    def step():
        module.zero_grad(set_to_none=True)
        output, _ = module(x)
        (output * weight).sum().backward()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            step()
            times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    hidden, layers, batch, steps = 512, 2, 64, 35
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        torch.manual_seed(0)
        x = torch.randn(steps, batch, hidden, device=args.device, dtype=dtype, requires_grad=True)
        weight = torch.randn(steps, batch, hidden, device=args.device, dtype=dtype)
        cudnn = torch.nn.LSTM(hidden, hidden, num_layers=layers).to(args.device, dtype)
        ours = LSTM(hidden, hidden, num_layers=layers).to(args.device, dtype)
        ours.load_state_dict(cudnn.state_dict())
        reference_ms = step_ms(cudnn, x, weight, args.device, args.repeats, args.warmup)
        rows.append({"dtype": dtype_name, "method": "torch.nn.LSTM", "step_ms": reference_ms})
        for label, spec in METHODS.items():
            ours.sparsifier = spec
            ms = step_ms(ours, x, weight, args.device, args.repeats, args.warmup)
            rows.append({"dtype": dtype_name, "method": label, "step_ms": ms,
                         "vs_torch_lstm": ms / reference_ms})
    device_name = (torch.cuda.get_device_name() if args.device == "cuda"
                   else platform.processor() or platform.machine())
    result = {"device": device_name, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "shape": {"hidden": hidden, "layers": layers, "batch": batch, "steps": steps},
              "repeats": args.repeats, "rows": rows}
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    print(f"device {device_name}, torch {torch.__version__}, median of {args.repeats}")
    print(f"{'dtype':10} {'method':18} {'fwd+bwd ms':>10} {'x torch.nn.LSTM':>16}")
    for row in rows:
        ratio = row.get("vs_torch_lstm")
        print(f"{row['dtype']:10} {row['method']:18} {row['step_ms']:10.2f} "
              f"{'' if ratio is None else f'{ratio:16.2f}'}")


if __name__ == "__main__":
    main()
