"""Compiles the CUDA C sources beside this file with CuPy and launches their entries.

Each `<name>.cu` becomes one `cupy.RawModule`, compiled once per process by NVRTC with
`common.cuh` pasted in front. `#line` directives make compile errors name the .cu file and its
own line numbers. Every kernel has one `extern "C"` entry per dtype, named
`<entry>_<dtype name>` (DTYPE_NAMES); launchers pick it by the tensors' dtype.

CuPy compiles and loads; the driver launches (cuLaunchKernelEx), on torch's current stream as
a raw handle, so launches order with torch work and are captured by `torch.cuda.graph`, and no
CuPy stream object stands for torch's (CuPy 14 deprecates ExternalStream). Tensors are passed
as raw device pointers: the launchers have already checked dtype, shape, contiguity and
device, and a per-launch DLPack round trip costs several microseconds, as much as a small
kernel.

Inside `early_launches()` kernels are launched programmatically dependent on the kernel before
them (CUDA's programmatic dependent launch, sm_90: a launch attribute, which CuPy's own launch
cannot pass): each may start while that one finishes, so a chain of short dependent kernels
(the backward's step loop) loses less time between them. Only kernels that call common.cuh's
wait_for_previous_kernel as it says may be launched so.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import pathlib
import threading
from typing import Any, Iterator, Sequence

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


def _argument(value: Any) -> Any:
    """A kernel argument as the launch passes it: an int (a pointer, or an int32 value) or a
    tensor map."""
    import numpy

    if isinstance(value, torch.Tensor):
        return value.data_ptr()
    if value is None:  # a pointer the kernel does not follow (an output not asked for)
        return 0
    if isinstance(value, numpy.void):  # a tensor map (_tensor_maps.py), passed by value
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"kernel arguments are tensors, None, ints or tensor maps, got "
                        f"{type(value).__name__}")
    if not -2**31 <= value < 2**31:
        raise OverflowError(f"kernel int argument {value} does not fit an int32")
    return value


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


# False: early_launches() launches plainly (benchmarks compare the two)
EARLY_LAUNCH = True
# per thread: autograd runs backwards on a thread of its own, and a kernel another thread
# launches meanwhile must not start early
_launching = threading.local()


@contextlib.contextmanager
def early_launches() -> Iterator[None]:
    """This thread's launches in the block start early (programmatic dependent launch) where
    the device has it; every kernel launched in it must wait_for_previous_kernel."""
    outer = getattr(_launching, "early", False)
    _launching.early = EARLY_LAUNCH
    try:
        yield
    finally:
        _launching.early = outer


@functools.cache
def _has_early_launch(device: int) -> bool:
    return torch.cuda.get_device_capability(device)[0] >= 9


def _run(function: Any, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
         shared_mem: int) -> None:
    import cupy

    device = torch.cuda.current_device()
    _allow_shared(function, device, shared_mem)
    arguments = tuple(_argument(a) for a in args)
    stream = current_stream_pointer(device)
    early = getattr(_launching, "early", False) and _has_early_launch(device)
    with cupy.cuda.Device(device):  # the RawKernel's CUfunction is per device
        _launch_on_driver(function, grid, block, arguments, shared_mem, stream, early)


# cuda.h's CUlaunchAttribute (an id, padding to 8 bytes, a 64-byte value) and CUlaunchConfig
class _LaunchAttribute(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int * 16)]


class _LaunchConfig(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("shared_mem", ctypes.c_uint), ("stream", ctypes.c_void_p),
                ("attributes", ctypes.POINTER(_LaunchAttribute)),
                ("attribute_count", ctypes.c_uint)]


PROGRAMMATIC_STREAM_SERIALIZATION = 6  # CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
_EARLY = ctypes.pointer(_LaunchAttribute(id=PROGRAMMATIC_STREAM_SERIALIZATION,
                                         value=(ctypes.c_int * 16)(1)))


@functools.cache
def _driver() -> Any:
    driver = ctypes.CDLL("libcuda.so.1")
    driver.cuLaunchKernelEx.restype = ctypes.c_int
    driver.cuLaunchKernelEx.argtypes = [ctypes.POINTER(_LaunchConfig), ctypes.c_void_p,
                                        ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    return driver


def _launch_on_driver(function: Any, grid: Sequence[int], block: Sequence[int],
                      arguments: Sequence[Any], shared_mem: int, stream: int,
                      early: bool) -> None:
    grid, block = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
    config = _LaunchConfig((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), shared_mem,
                           stream, _EARLY if early else None, int(early))
    # One 8-byte slot per int argument, in one array (fewer ctypes objects a launch): the
    # driver copies as many bytes as the kernel's parameter has, and an int32 is the slot's
    # low half (little-endian); a tensor map has a buffer of its own.
    count = max(1, len(arguments))
    slots = (ctypes.c_uint64 * count)()
    base, maps, addresses = ctypes.addressof(slots), [], []
    for i, value in enumerate(arguments):
        if isinstance(value, int):
            slots[i] = value & 0xFFFFFFFFFFFFFFFF
            addresses.append(base + 8 * i)
        else:
            data = value.tobytes()
            maps.append(ctypes.create_string_buffer(data, len(data)))
            addresses.append(ctypes.addressof(maps[-1]))
    pointers = (ctypes.c_void_p * count)(*addresses)
    handle = function.kernel.ptr  # the RawKernel's CUfunction on the current device
    status = _driver().cuLaunchKernelEx(ctypes.byref(config), handle, pointers, None)
    if status != 0:
        name = ctypes.c_char_p()
        _driver().cuGetErrorName(status, ctypes.byref(name))
        raise RuntimeError(f"cuLaunchKernelEx: {(name.value or b'?').decode()} ({status})")


def current_stream_pointer(device: int) -> int:
    """torch's current stream on `device`, as a raw cudaStream_t (without building a Stream
    object: that costs ~15 us of host time on the lent machines)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(device) if raw is not None else torch.cuda.current_stream(device).cuda_stream


def copy_device(target: torch.Tensor, source: torch.Tensor) -> None:
    """target[...] = source for two contiguous tensors of one dtype, shape and device, by one
    cudaMemcpyAsync on the current stream: less host time than Tensor.copy_'s (on the lent
    machines 15 against 39 us, benchmarks/host_costs.py)."""
    import cupy

    device = source.device.index
    cupy.cuda.runtime.memcpyAsync(target.data_ptr(), source.data_ptr(),
                                  source.numel() * source.element_size(),
                                  cupy.cuda.runtime.memcpyDeviceToDevice,
                                  current_stream_pointer(device))
