"""Times one LSTM (ours with a method, or torch.nn.LSTM on cuDNN) at one shape and dtype.

Backward time: `torch.autograd.backward` of the output through all layers, given the saved
forward state (retain_graph), bracketed by CUDA events; median over repeats after warm-up.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterator

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


def cuda_times(work: Callable[[], None], repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` calls of `work`, by CUDA events."""
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def median_cuda_ms(work: Callable[[], None], warmup: int = 3, repeats: int = 20) -> float:
    """Median milliseconds of `work` by CUDA events, after `warmup` untimed calls."""
    for _ in range(warmup):
        work()
    return statistics.median(cuda_times(work, repeats))


@contextlib.contextmanager
def overridden(module: Any, settings: dict[str, Any]) -> Iterator[None]:
    """The module's settings (its upper-case names, as products.USE_TMA) set for the block,
    then restored: how benchmarks pick one kernel of several for the same product."""
    shipped = {name: getattr(module, name) for name in settings}
    try:
        for name, value in settings.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in shipped.items():
            setattr(module, name, value)


def kernel_ms(work: Callable[[], None], launches: int = 10) -> float:
    """Device milliseconds of one `work` without its launch overhead: `launches` calls captured
    in one CUDA graph, the replay timed by median_cuda_ms."""
    from sparsetrain.kernels.graphs import capture

    graph, _ = capture(lambda: [work() for _ in range(launches)])
    return median_cuda_ms(graph.replay, 3, 20) / launches


def _interleaved(setups: list, kind: str, warmup: int, per_round: int,
                 rounds: int) -> list[list[list[float]]]:
    """times[configuration][round] = per_round CUDA-event times of `kind`, rounds interleaved."""
    for setup in setups:
        for _ in range(warmup):
            getattr(setup, kind)()
    times: list[list[list[float]]] = [[] for _ in setups]
    for _ in range(rounds):
        for i, setup in enumerate(setups):
            times[i].append(cuda_times(getattr(setup, kind), per_round))
    return times


class Configuration:
    """One method's model on one shape and dtype, its forward done, ready to time."""

    def __init__(self, method: str, sparsity: float, shape: Shape, dtype: torch.dtype) -> None:
        self.method, self.sparsity = method, sparsity
        self.spec = method_spec(method, sparsity, shape)
        self.model = _model(self.spec, shape, dtype)
        self.x = torch.randn(shape.steps, shape.batch, shape.hidden, device="cuda", dtype=dtype,
                             requires_grad=True)
        self.grad = torch.randn(shape.steps, shape.batch, shape.hidden, device="cuda",
                                dtype=dtype)
        self.output, _ = self.model(self.x)

    def backward(self) -> None:
        torch.autograd.backward(self.output, self.grad, retain_graph=True)

    def train_step(self) -> None:
        out, _ = self.model(self.x)
        torch.autograd.backward(out, self.grad)


def time_methods(configurations: list[tuple[str, float]], shape: Shape, dtype: torch.dtype,
                 warmup: int = 5, repeats: int = 20, rounds: int = 5) -> list[dict]:
    """{"backward_ms", "train_ms"} (train = forward + backward; medians) for each (method,
    sparsity) on one shape and dtype (dense and cudnn come with sparsity 0).

    The configurations are timed in turn, `repeats / rounds` calls each per round, for
    `rounds` rounds: a slow spell of the machine then falls on all of them alike instead of
    on whichever ran during it. Each row also keeps its per-round medians."""
    from sparsetrain.kernels import graphs

    cached = graphs.CACHED_GRAPHS
    # Every configuration's graphs (per layer a forward and the backward's) stay captured
    # while the rounds interleave: an evicted graph would be captured again inside a timed call.
    per_layer = 1 + graphs.GRAPHS_PER_BACKWARD
    graphs.CACHED_GRAPHS = max(cached, per_layer * len(configurations) * shape.layers + 2)
    try:
        setups = [Configuration(method, level, shape, dtype) for method, level in configurations]
        samples = {kind: _interleaved(setups, kind, warmup, -(-repeats // rounds), rounds)
                   for kind in ("backward", "train_step")}
    finally:
        graphs.CACHED_GRAPHS = cached
    rows = []
    for i, setup in enumerate(setups):
        backward, train = samples["backward"][i], samples["train_step"][i]
        rows.append({
            "method": setup.method,
            "sparsity": setup.sparsity,
            "spec": setup.spec,
            "backward_ms": statistics.median([t for r in backward for t in r]),
            "train_ms": statistics.median([t for r in train for t in r]),
            "backward_ms_rounds": [statistics.median(r) for r in backward]})
    return rows
