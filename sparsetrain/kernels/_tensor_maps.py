"""Tensor maps for Hopper's bulk tensor copies (TMA), made by the CUDA driver's
cuTensorMapEncodeTiled (through ctypes: neither torch nor CuPy wraps it).

A map describes a tensor in global memory (its address, sizes and byte strides) and the box one
copy moves, landing in shared memory in the 128-byte swizzle hopper.cu's wgmma tiles use. The
kernels take it by value (hopper.cu's TensorMap), so it is handed to the launch as a 128-byte
NumPy structured scalar. A map holds the tensor's address: it is made at each launch, and a
captured graph keeps the one of its capture, whose tensors it keeps too.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Sequence

import torch

# CUtensorMapDataType, CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion and
# CUtensorMapFloatOOBfill values (cuda.h)
_DATA_TYPES = {torch.bfloat16: 9, torch.float32: 7}
_INTERLEAVE_NONE, _SWIZZLE_128B, _L2_PROMOTION_256B, _OUT_OF_BOUNDS_ZERO = 0, 3, 3, 0
SWIZZLE_BYTES = 128  # a box's innermost extent, in bytes, is at most the swizzle's span


@functools.cache
def _encode() -> Any:
    function = ctypes.CDLL("libcuda.so.1").cuTensorMapEncodeTiled
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p,
                         ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64),
                         ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32),
                         ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return function


@functools.cache
def _map_dtype() -> Any:
    import numpy

    return numpy.dtype([("opaque", numpy.uint64, (16,))])


def tiled(tensor: torch.Tensor, box: Sequence[int]) -> Any:
    """The map of a contiguous CUDA tensor whose boxes are `box` elements, innermost dimension
    first (the reverse of torch's order), with zeros read past the tensor's edges."""
    import numpy

    rank = tensor.dim()
    if tensor.dtype not in _DATA_TYPES or not tensor.is_contiguous() or len(box) != rank:
        raise ValueError(f"tensor map: need a contiguous bf16 or float32 tensor and a box of "
                         f"{rank} sizes")
    if box[0] * tensor.element_size() > SWIZZLE_BYTES:
        raise ValueError(f"tensor map: a box row of {box[0]} elements passes "
                         f"{SWIZZLE_BYTES} bytes")
    sizes = (ctypes.c_uint64 * rank)(*reversed(tensor.shape))
    strides = (ctypes.c_uint64 * rank)(*(stride * tensor.element_size()
                                         for stride in reversed(tensor.stride()[:-1])))
    boxes = (ctypes.c_uint32 * rank)(*box)
    element_strides = (ctypes.c_uint32 * rank)(*([1] * rank))
    result = numpy.zeros((), dtype=_map_dtype())
    status = _encode()(result.ctypes.data, _DATA_TYPES[tensor.dtype], rank, tensor.data_ptr(),
                       sizes, strides, boxes, element_strides, _INTERLEAVE_NONE, _SWIZZLE_128B,
                       _L2_PROMOTION_256B, _OUT_OF_BOUNDS_ZERO)
    if status != 0:
        raise RuntimeError(f"cuTensorMapEncodeTiled failed with CUresult {status} for a "
                           f"{tuple(tensor.shape)} {tensor.dtype} tensor, box {tuple(box)}")
    return result[()]
