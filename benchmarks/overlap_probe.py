"""Would the batched products overlap the step loop? One layer's dense bf16 step loop (35 cell
steps and per-step products, launched early as the backward does) and its batched products
(dW_ih, dW_hh, dx, each on a side stream as backward.finish runs them, but over inputs of
their own, so that nothing orders them after the loop), timed as graph replays: each alone,
then both in one graph, started together. Overlap would show as `both` below `loop + batched`.

Two settings: shipped (the per-step product in two blocks an SM, the batched products on the
copy-engine kernels, 192 KB of shared memory a block: no block of one fits beside a block of
the other), and "room" (the per-step product split for one block an SM, the batched products
on the cp.async kernels in 128 x 128 tiles, 96 KB: a block of each fits an SM together).

Usage: python3 benchmarks/overlap_probe.py [shape ...]   (default: xl large)
"""
import sys

import torch

from kernel_times import layer_state
from sparsetrain.bench.measure import kernel_ms, overridden, parse_shape
from sparsetrain.kernels import backward as plans
from sparsetrain.kernels import products
from sparsetrain.kernels._loader import early_launches

SETTINGS = {"shipped": {},
            "room": {"TWO_WAVES": products.SMS, "USE_TMA": False, "WIDE_LEAST_BLOCKS": 10**9,
                     "keep_all_on_tma": lambda dtype, device: False}}


def probe(name: str, settings: dict) -> dict:
    shape = parse_shape(name)
    state = layer_state(shape, torch.bfloat16)
    T, N, H = shape.steps, shape.batch, shape.hidden
    with overridden(products, settings):
        loop = plans._Loop(state)
        dnet = state.x.new_empty(T, N, 4 * H)
        recur = loop.recur_dense()
        values = torch.randn(T * N, 4 * H, device="cuda").bfloat16()
        x = state.x.reshape(T * N, H)
        on_tma = products.keep_all_on_tma(torch.bfloat16, x.device)
        d_w_dtype = (products.keep_all_out_dtype(torch.bfloat16, 4 * H, H, T) if on_tma
                     else torch.float32)
        d_w = [torch.empty(4 * H, H, device="cuda", dtype=d_w_dtype) for _ in range(2)]
        index, slot = loop.dense_index()

        def weight_gradient(out):
            if on_tma:
                products.keep_all_wgrad(values, x, T, out)
            else:
                products.region_wgrad(values, x, index, slot, plans.DENSE_SLICE,
                                      plans.DENSE_REGION, 0, T, out)
        d_x = torch.empty(T * N, H, device="cuda").bfloat16()
        dx_index = loop.dense_index(plans.DENSE_ROWS)[0]
        sides = [torch.cuda.Stream() for _ in range(3)]

        def step_loop():
            with early_launches():
                for t in range(T - 1, -1, -1):
                    loop.cell(t, dnet[t])
                    recur(dnet[t])

        def start_batched():
            main = torch.cuda.current_stream()
            work = [lambda: weight_gradient(d_w[0]), lambda: weight_gradient(d_w[1]),
                    lambda: products.gather_mm(values, state.w_ih, dx_index, plans.DENSE_ROWS,
                                               N, d_x)]
            for side, job in zip(sides, work):
                side.wait_stream(main)
                with torch.cuda.stream(side):
                    job()

        def join():
            for side in sides:
                torch.cuda.current_stream().wait_stream(side)

        def batched():
            start_batched()
            join()

        def both():
            start_batched()
            step_loop()
            join()

        times = {label: 1000 * kernel_ms(work, launches=1)
                 for label, work in (("loop", step_loop), ("batched", batched), ("both", both))}
    return times


def main():
    print(f"device: {torch.cuda.get_device_name()}")
    for name in sys.argv[1:] or ["xl", "large"]:
        for label, settings in SETTINGS.items():
            t = probe(name, settings)
            print(f"{name:5} {label:8} loop {t['loop']:7.1f} us  batched {t['batched']:7.1f} us  "
                  f"sum {t['loop'] + t['batched']:7.1f}  both {t['both']:7.1f} us")


if __name__ == "__main__":
    main()
