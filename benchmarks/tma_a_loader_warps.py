"""gather_mm_tma_a with 1, 2, 4 or 8 loading warps (hopper.cu TMA_A_LOADER_WARPS), 128 x 256
and 128 x 128 tiles, on coarse 50%'s dx (bf16, P = 4) at the given shapes, each checked against
the cp.async-fed gather_mm and timed beside it (bench.measure.kernel_ms).

Usage (on the device): python3 benchmarks/tma_a_loader_warps.py [shape...]  (default: xl large)
"""
import sys
import torch
from sparsetrain.bench.measure import kernel_ms, overridden, parse_shape
from sparsetrain.kernels import products, _loader, _tensor_maps

SLICE = 4
def main():
    for name in sys.argv[1:] or ["xl", "large"]:
        shape = parse_shape(name)
        hidden, batch, steps, width = shape.hidden, shape.batch, shape.steps, 4 * shape.hidden
        w = torch.randn(width, hidden, device="cuda").bfloat16()
        out = torch.empty(steps * batch, hidden, device="cuda").bfloat16()
        kept = width // (2 * SLICE)
        index = torch.stack([torch.randperm(width // SLICE, device="cuda")[:kept].sort().values
                             for _ in range(steps)]).int()
        values = torch.randn(steps * batch, kept * SLICE, device="cuda").bfloat16()
        ref = None
        with overridden(products, {"USE_TMA": False}):
            products.gather_mm(values, w, index, SLICE, batch, out); ref = out.clone()
            print(name, "cp.async", round(1000 * kernel_ms(lambda: products.gather_mm(values, w, index, SLICE, batch, out)), 1))
        text = _loader.source_text("hopper")
        for warps in (1, 2, 4, 8):
            for wide, tiles in ((True, products.TMA_WIDE_TILES), (False, products.TMA_TILES)):
                variant = text.replace("constexpr int TMA_A_LOADER_WARPS = 2;", f"constexpr int TMA_A_LOADER_WARPS = {warps};")
                entry = f"gather_mm_tma_a{'_wide' if wide else ''}_bfloat16_out_bfloat16"
                fn = _loader.variant_kernel("hopper", variant, entry)
                m, kc = values.shape
                grid, _, shared = products.gather_geometry(values.dtype, m, kc, hidden, SLICE, 1, tiles)
                a_map = _tensor_maps.tiled(values.unsqueeze(0), (tiles.depth, tiles.rows, 1))
                args = (a_map, w, index, SLICE, batch, out, m, kc, hidden)
                work = lambda: _loader.launch_function(fn, grid, (256 + 32 * warps,), args, products.RING_BYTES + shared)
                out.fill_(float("nan")); work(); torch.cuda.synchronize()
                err = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
                print(name, f"tma_a warps {warps} {'wide' if wide else '128'}", round(1000 * kernel_ms(work), 1), f"err {err:.1e}")

if __name__ == "__main__":
    main()
