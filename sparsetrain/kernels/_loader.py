"""Compiles the CUDA C sources beside this file with CuPy and launches their entries.

Each `<name>.cu` becomes one `cupy.RawModule`, compiled once per process by NVRTC with
`common.cuh` pasted in front. `#line` directives make compile errors name the .cu file and its
own line numbers. Every kernel has one `extern "C"` entry per dtype, named
`<entry>_<dtype name>` (DTYPE_NAMES); launchers pick it by the tensors' dtype.

Launches run on torch's current stream, so they order with torch work and are captured by
`torch.cuda.graph`. Tensors are passed as raw device pointers: the launchers have already
checked dtype, shape, contiguity and device, and a per-launch DLPack round trip costs several
microseconds, as much as a small kernel. `to_cupy` gives a zero-copy DLPack view where a CuPy
array is wanted.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Sequence

import torch

from sparsetrain.kernels._checks import expect_cuda

KERNEL_DIR = pathlib.Path(__file__).resolve().parent
COMMON_HEADER = KERNEL_DIR / "common.cuh"
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}
NVRTC_OPTIONS = ("--std=c++17",)
# hopper.cu's wgmma instructions exist only in the architecture-specific sm_90a target.
MODULE_OPTIONS = {"hopper": ("-arch=sm_90a",)}


def source_files() -> list[pathlib.Path]:
    return sorted(KERNEL_DIR.glob("*.cu"))


def source_text(name: str) -> str:
    """The text NVRTC compiles for `<name>.cu`: the common header, then the file itself."""
    body = KERNEL_DIR / f"{name}.cu"
    return (f'#line 1 "{COMMON_HEADER}"\n{COMMON_HEADER.read_text()}\n'
            f'#line 1 "{body}"\n{body.read_text()}')


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@functools.cache
def _compiled(module: str, text: str) -> Any:
    import cupy

    return cupy.RawModule(code=text, options=NVRTC_OPTIONS + MODULE_OPTIONS.get(module, ()))


@functools.cache
def kernel(module: str, name: str) -> Any:
    return _compiled(module, source_text(module)).get_function(name)


def variant_kernel(module: str, text: str, name: str) -> Any:
    """Entry `name` of `text`, a variant of `<module>.cu`'s source_text (benchmarks: other
    tilings or constants), compiled once per process as that module is; run it with
    launch_function."""
    return _compiled(module, text).get_function(name)


@functools.cache
def _external_stream(pointer: int, device: int) -> Any:
    import cupy

    return cupy.cuda.ExternalStream(pointer, device)


def pointer(tensor: torch.Tensor) -> Any:
    import numpy

    return numpy.uint64(tensor.data_ptr())


def _argument(value: Any) -> Any:
    import numpy

    if isinstance(value, torch.Tensor):
        return pointer(value)
    if isinstance(value, numpy.void):  # a tensor map (_tensor_maps.py), passed by value
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"kernel arguments are tensors, ints or tensor maps, got "
                        f"{type(value).__name__}")
    return numpy.int32(value)


DEFAULT_SHARED_LIMIT = 48 * 1024
# (id(function), device) -> (function, bytes opted into); holding the function keeps its id
# its own
_shared_limits: dict[tuple[int, int], tuple[Any, int]] = {}


def _allow_shared(function: Any, device: int, shared_mem: int) -> None:
    """Past 48 KB a kernel's dynamic shared memory must be opted into, once per function."""
    key = (id(function), device)
    if shared_mem > max(DEFAULT_SHARED_LIMIT, _shared_limits.get(key, (None, 0))[1]):
        function.max_dynamic_shared_size_bytes = shared_mem
        _shared_limits[key] = (function, shared_mem)


def launch(module: str, name: str, grid: Sequence[int],
           block: Sequence[int], args: Sequence[Any], shared_mem: int = 0) -> None:
    """Run `name` from `<module>.cu` on torch's current stream."""
    expect_cuda([a for a in args if isinstance(a, torch.Tensor)], name)
    _run(kernel(module, name), grid, block, args, shared_mem)


def launch_function(function: Any, grid: Sequence[int], block: Sequence[int],
                    args: Sequence[Any], shared_mem: int = 0) -> None:
    """Run a compiled entry (`kernel`, `variant_kernel`) on torch's current stream."""
    expect_cuda([a for a in args if isinstance(a, torch.Tensor)], "kernel")
    _run(function, grid, block, args, shared_mem)


def _run(function: Any, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
         shared_mem: int) -> None:
    import cupy

    device = torch.cuda.current_device()
    _allow_shared(function, device, shared_mem)
    stream = _external_stream(torch.cuda.current_stream().cuda_stream, device)
    with cupy.cuda.Device(device), stream:
        function(tuple(grid), tuple(block), tuple(_argument(a) for a in args),
                 shared_mem=shared_mem)


def to_cupy(tensor: torch.Tensor) -> Any:
    """A CuPy array sharing the tensor's memory (DLPack, no copy)."""
    import cupy

    return cupy.from_dlpack(tensor.detach())
