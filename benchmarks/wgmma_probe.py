"""Which descriptor offsets a no-swizzle MN-major wgmma operand takes, and which compiler path
builds sm_90a code here: one 64 x 64 x 16 product per setting against torch.

Usage: python3 benchmarks/wgmma_probe.py            (no-swizzle offsets, compiler paths)
       python3 benchmarks/wgmma_probe.py --hopper   (hopper.cu's swizzled B strides)
       python3 benchmarks/wgmma_probe.py --stages   (hopper.cu's batched product, 3-6 stages)
"""
import dataclasses
import pathlib
import sys

import cupy
import numpy
import torch

SOURCE = (pathlib.Path(__file__).parent / "wgmma_probe.cu").read_text()
BUILDS = {
    "nvrtc sm_90a": dict(options=("--std=c++17", "-arch=sm_90a")),
    "nvcc sm_90a": dict(options=("-std=c++17", "-gencode=arch=compute_90a,code=sm_90a"),
                        backend="nvcc"),
}


def main():
    a = torch.randn(64, 16, device="cuda").bfloat16()
    b = torch.randn(16, 64, device="cuda").bfloat16()
    expected = a.double() @ b.double()
    for build, kwargs in BUILDS.items():
        try:
            function = cupy.RawModule(code=SOURCE, **kwargs).get_function("probe")
        except Exception as error:  # noqa: BLE001 - report every failure and go on
            print(f"{build}: {type(error).__name__}: {str(error)[:300]}")
            continue
        for lbo_b, sbo_b, tnsp in [(128, 256, 1), (256, 128, 1), (128, 256, 0), (256, 128, 0)]:
            d = torch.full((64, 64), float("nan"), device="cuda")
            pointers = [numpy.uint64(t.data_ptr()) for t in (a, b, d)]
            numbers = [numpy.int32(v) for v in (128, 256, lbo_b, sbo_b, tnsp)]
            function((1,), (128,), (*pointers, *numbers))
            torch.cuda.synchronize()
            error = ((d.double() - expected).norm() / expected.norm()).item()
            print(f"{build}: B lbo {lbo_b} sbo {sbo_b} tnsp {tnsp}: rel error {error:.2e}")


if __name__ == "__main__" and len(sys.argv) == 1:
    main()


def check_hopper_b_strides():
    """hopper.cu as shipped and with B's two descriptor strides swapped, on one product."""
    from sparsetrain.kernels import _loader, products
    shipped = _loader.source_text("hopper")
    call = "tile_descriptor(Bs + 16 * 64 * j, BK * 128, 1024)"
    assert call in shipped
    variants = {"shipped": shipped,
                "swapped": shipped.replace(call, "tile_descriptor(Bs + 16 * 64 * j, 1024, BK * 128)")}
    M, kc, F, P = 256, 512, 256, 4
    a = torch.randn(M, kc, device="cuda").bfloat16()
    b = torch.randn(kc, F, device="cuda").bfloat16()
    index = torch.arange(kc // P, device="cuda", dtype=torch.int32)[None].expand(2, -1).contiguous()
    expected = a.double() @ b.double()
    tiles = products.HOPPER_TILES
    grid, block, shared = products.gather_geometry(torch.bfloat16, M, kc, F, P, 1, tiles)
    for name, source in variants.items():
        function = _loader.variant_kernel("hopper", source,
                                          "gather_mm_hopper_bfloat16_out_bfloat16")
        out = torch.full((M, F), float("nan"), device="cuda").bfloat16()
        _loader.launch_function(function, grid, block, (a, b, index, P, 128, out, M, kc, F),
                                shared)
        torch.cuda.synchronize()
        error = ((out.double() - expected).norm() / expected.norm()).item()
        print(f"hopper B strides {name}: rel error {error:.2e}")


if __name__ == "__main__" and "--hopper" in sys.argv:
    check_hopper_b_strides()


def time_hopper_stages():
    """hopper.cu's batched product with 3 to 6 stages (loads 1 to 4 tiles ahead): kernel us."""
    from sparsetrain.bench.measure import kernel_ms
    from sparsetrain.kernels import _loader, products
    shipped = _loader.source_text("hopper")
    entry = "HOPPER_ENTRY(gather_mm_hopper_bfloat16_out_bfloat16, bf16, 2, 1, 3)"
    assert entry in shipped
    for M, kc, F in [(4480, 4096, 1024), (8960, 8192, 2048)]:
        a = torch.randn(M, kc, device="cuda").bfloat16()
        b = torch.randn(kc, F, device="cuda").bfloat16()
        index = torch.arange(kc // 4, device="cuda", dtype=torch.int32)[None].expand(
            M // 128, -1).contiguous()
        out = torch.empty(M, F, device="cuda").bfloat16()
        for stages in (3, 4, 5, 6):
            source = shipped.replace(entry, entry.replace("1, 3)", f"1, {stages})"))
            function = _loader.variant_kernel("hopper", source,
                                              "gather_mm_hopper_bfloat16_out_bfloat16")
            tiles = dataclasses.replace(products.HOPPER_TILES, stages=stages)
            grid, block, shared = products.gather_geometry(torch.bfloat16, M, kc, F, 4, 1, tiles)
            args = (a, b, index, 4, 128, out, M, kc, F)
            ms = kernel_ms(lambda: _loader.launch_function(function, grid, block, args, shared))
            print(f"hopper batch {M}x{kc}x{F} stages {stages}: {ms * 1000:.1f} us "
                  f"{2 * M * kc * F / ms / 1e9:.0f} TFLOP/s")


if __name__ == "__main__" and "--stages" in sys.argv:
    time_hopper_stages()
