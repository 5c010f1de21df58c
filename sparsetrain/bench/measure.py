"""Times one LSTM (ours with a method, or torch.nn.LSTM on cuDNN) at one shape and dtype.

Backward time: `torch.autograd.backward` of the output through all layers, given the saved
forward state (retain_graph), bracketed by CUDA events; median over repeats after warm-up.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from sparsetrain.errors import ConfigError

SHAPES = {  # H, N, T, layers
    "ptb": (512, 64, 35, 2),
    "nmt": (512, 128, 50, 1),
    "large": (1024, 128, 35, 1),
    "xl": (2048, 256, 35, 1),
}
METHODS = ("dense", "coarse", "fine", "meprop", "cudnn")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    batch: int
    steps: int
    layers: int


def parse_shape(text: str) -> Shape:
    if text in SHAPES:
        return Shape(text, *SHAPES[text])
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--shape: one of {', '.join(SHAPES)} or H,N,T,L (positive "
                          f"integers), got {text!r}")
    return Shape(text, *(int(p) for p in parts))


def method_spec(method: str, sparsity: float, shape: Shape) -> dict | None:
    """The sparsifier spec for a method at a sparsity (None for cuDNN)."""
    if method == "cudnn":
        return None
    if method == "dense":
        return {"name": "dense"}
    if method == "coarse":
        return {"name": "coarse", "P": 4, "R": 8, "S": round(8 * sparsity)}
    if method == "fine":
        return {"name": "fine", "My": 8, "Mx": 4, "K": round(shape.batch // 8 * sparsity)}
    if method == "meprop":
        return {"name": "meprop", "keep": 1.0 - sparsity, "target": "dnet"}
    raise ConfigError(f"--methods: unknown method {method!r}; valid: {', '.join(METHODS)}")


def _model(spec: dict | None, shape: Shape, dtype: torch.dtype) -> torch.nn.Module:
    if spec is None:
        model = torch.nn.LSTM(shape.hidden, shape.hidden, shape.layers)
    else:
        from sparsetrain.nn import LSTM
        model = LSTM(shape.hidden, shape.hidden, shape.layers, sparsifier=spec, backend="cupy")
    return model.to(device="cuda", dtype=dtype)


def median_cuda_ms(work: Callable[[], None], warmup: int = 3, repeats: int = 20) -> float:
    """Median milliseconds of `work` by CUDA events, after `warmup` untimed calls."""
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def kernel_ms(work: Callable[[], None], launches: int = 10) -> float:
    """Device milliseconds of one `work` without its launch overhead: `launches` calls captured
    in one CUDA graph, the replay timed by median_cuda_ms."""
    from sparsetrain.kernels.graphs import capture

    graph, _ = capture(lambda: [work() for _ in range(launches)])
    return median_cuda_ms(graph.replay, 3, 20) / launches


def time_method(method: str, sparsity: float, shape: Shape, dtype: torch.dtype,
                warmup: int = 5, repeats: int = 20) -> dict:
    """{"backward_ms", "train_ms"} (train = forward + backward) for one configuration."""
    spec = method_spec(method, sparsity, shape)
    model = _model(spec, shape, dtype)
    x = torch.randn(shape.steps, shape.batch, shape.hidden, device="cuda", dtype=dtype,
                    requires_grad=True)
    grad = torch.randn(shape.steps, shape.batch, shape.hidden, device="cuda", dtype=dtype)
    output, _ = model(x)

    def backward() -> None:
        torch.autograd.backward(output, grad, retain_graph=True)

    def train_step() -> None:
        out, _ = model(x)
        torch.autograd.backward(out, grad)

    backward_ms = median_cuda_ms(backward, warmup, repeats)
    train_ms = median_cuda_ms(train_step, warmup, repeats)
    return {"method": method, "sparsity": 0.0 if method in ("dense", "cudnn") else sparsity,
            "spec": spec, "backward_ms": backward_ms, "train_ms": train_ms}
