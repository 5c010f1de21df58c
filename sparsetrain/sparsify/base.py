"""What every gate-gradient method shares: parameters, the registry, statistics, masking.

A method is a small class: it declares its parameters and says which entries of `dnet` it
keeps (`keep_mask`). Everything else (checking a spec, statistics, applying the mask) lives here
once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch

from sparsetrain.errors import ConfigError
from sparsetrain.registry import Registry

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One method parameter: its type, default (or REQUIRED) and a value rule."""

    name: str
    kind: type
    default: Any = REQUIRED
    rule: Callable[[Any], bool] | None = None
    rule_text: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compact:
    """Kept values as a dense block plus the index of the kept slices / blocks / columns."""

    values: torch.Tensor
    index: torch.Tensor


_METHODS: Registry = Registry("method")
register_method = _METHODS.register
names = _METHODS.names


def _type_problem(param: Param, value: Any) -> str | None:
    if param.kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    elif param.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    else:
        ok = isinstance(value, str)
        expected = "a string"
    return None if ok else f"expected {expected}, got {value!r}"


def resolve(spec: Mapping[str, Any], where: str = "method") -> dict[str, Any]:
    """Check a method spec and return it with every default filled in.

    Every problem is collected; one ConfigError lists them all, each prefixed with `where`.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{name: coarse, R: 8, S: 4}}, "
                          f"got {spec!r}")
    name = spec.get("name")
    if name not in _METHODS:
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{where}.name: unknown method {name!r}{hint} "
                          f"valid: {', '.join(names())}")
    cls = _METHODS[name]
    declared = {p.name: p for p in cls.parameters}
    problems: list[str] = []
    resolved: dict[str, Any] = {"name": name}
    for key in spec:
        if key != "name" and key not in declared:
            close = difflib.get_close_matches(str(key), list(declared), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            valid = ", ".join(["name", *declared]) if declared else "name"
            problems.append(f"{where}.{key}: unknown parameter of {name}{hint} valid: {valid}")
    for param in cls.parameters:
        if param.name not in spec:
            if param.default is REQUIRED:
                problems.append(f"{where}.{param.name}: required by method {name}")
                continue
            resolved[param.name] = param.default
            continue
        value = spec[param.name]
        problem = _type_problem(param, value)
        if problem is None and param.choices and value not in param.choices:
            problem = f"must be one of {', '.join(param.choices)}, got {value!r}"
        if problem is None and param.rule is not None and not param.rule(value):
            problem = f"must be {param.rule_text}, got {value!r}"
        if problem:
            problems.append(f"{where}.{param.name}: {problem}")
        else:
            resolved[param.name] = float(value) if param.kind is float else value
    if not problems:
        problems.extend(f"{where}.{text}" for text in cls.cross_check(resolved))
    if problems:
        raise ConfigError("\n".join(problems))
    return resolved


def build(spec: Mapping[str, Any] | Sparsifier | None) -> Sparsifier:
    """A sparsifier from a spec (None means dense); an existing one is copied fresh."""
    if spec is None:
        spec = {"name": "dense"}
    if isinstance(spec, Sparsifier):
        spec = spec.spec
    resolved = resolve(spec)
    return _METHODS[resolved["name"]](resolved)


def decision_dtype(tensor: torch.Tensor) -> torch.dtype:
    """Selections are decided on at least float32 values, whatever the training dtype."""
    return tensor.dtype if tensor.dtype in (torch.float32, torch.float64) else torch.float32


def decision_values(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(decision_dtype(tensor))


def summarize(records: torch.Tensor) -> torch.Tensor:
    """(calls, 3) per-call records (kept fraction, ||s||, ||dnet||) -> float64 sums over the
    calls of (dropped fraction, kept energy, cosine), as a Sparsifier's statistics add them.

    For a mask, <s, dnet> = ||s||^2, so cosine(s, dnet) = ||s|| / ||dnet|| and the kept
    energy is its square; a zero gradient counts as all kept. Device ops only (no host sync;
    a captured CUDA graph can make them)."""
    kept_fraction, kept_norm, total_norm = records.double().unbind(1)
    ratio = torch.where(total_norm > 0, kept_norm / total_norm.clamp_min(1e-300), 1.0)
    return torch.stack([(1 - kept_fraction).sum(), ratio.square().sum(), ratio.sum()])


def shape_error(param: str, value: Any, rule: str) -> ConfigError:
    return ConfigError(f"method.{param}: {rule} (got {param}={value})")


class Sparsifier:
    """Zeroes the entries of a gate gradient that a method drops, and keeps statistics."""

    name: ClassVar[str]
    parameters: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = dict(spec)
        for param in self.parameters:
            setattr(self, param.name, self.spec[param.name])
        self._reset_stats()

    @property
    def acts_on(self) -> str:
        """Which gradient the layer hands to this method: "dnet" (N x 4H) or "dh" (N x H)."""
        return "dh" if self.spec.get("target") == "dh" else "dnet"

    @classmethod
    def cross_check(cls, params: Mapping[str, Any]) -> list[str]:
        """Rules that tie two parameters; each problem starts with the parameter's name."""
        return []

    def keep_mask(self, dnet: torch.Tensor) -> torch.Tensor | None:
        """A bool tensor broadcastable to dnet (True = kept), or None when all is kept."""
        raise NotImplementedError

    def compact(self, dnet: torch.Tensor) -> Compact:
        raise ConfigError(f"method {self.name} is unstructured: it has no compact form")

    def expand(self, compact: Compact, shape: tuple[int, int]) -> torch.Tensor:
        raise ConfigError(f"method {self.name} is unstructured: it has no compact form")

    def __call__(self, dnet: torch.Tensor) -> torch.Tensor:
        mask = self.keep_mask(dnet)
        self._calls += 1
        if mask is None:
            return dnet
        kept = dnet * mask
        self._record(mask, dnet, kept)
        return kept

    def _record(self, mask: torch.Tensor, dnet: torch.Tensor, kept: torch.Tensor) -> None:
        # Device scalars only: a training step never waits for the host.
        dtype = decision_dtype(dnet)
        self._add(summarize(torch.stack([mask.sum(dtype=dtype) / mask.numel(),
                                         torch.linalg.vector_norm(kept, dtype=dtype),
                                         torch.linalg.vector_norm(dnet, dtype=dtype)])[None]), 1)

    def record_steps(self, summary: torch.Tensor | None, steps: int) -> None:
        """Statistics of `steps` calls made elsewhere (a fused kernel backend): `summary` is
        `summarize` of their per-call records, on the device; None means every call kept
        everything."""
        self._calls += steps
        if summary is not None:
            self._add(summary, steps)

    def _add(self, summary: torch.Tensor, calls: int) -> None:
        # One add per record: no list of pending records to fold later (the fold of ~1000
        # records stalled the host for 17-55 ms on an H100 machine, once per ~30 backwards).
        # the first one copied: a kernel backend's summary lives in a graph's buffer, which
        # the graph's next replay would overwrite (and keeping it would hold that graph)
        self._sums = summary.clone() if self._sums is None else self._sums + summary
        self._masked_calls += calls

    def stats(self) -> dict[str, float]:
        """Averages of sparsity, kept energy and cosine since the last read; then reset.

        Calls that kept everything count as sparsity 0, kept energy 1, cosine 1.
        """
        if self._calls == 0:
            return {}
        sparsity, kept_energy, cosine = self._sums.tolist() if self._sums is not None else (0, 0, 0)
        untouched = self._calls - self._masked_calls
        result = {"sparsity": sparsity / self._calls,
                  "kept_energy": (kept_energy + untouched) / self._calls,
                  "cosine": (cosine + untouched) / self._calls}
        self._reset_stats()
        return result

    def _reset_stats(self) -> None:
        self._sums: torch.Tensor | None = None  # summarize() of every masked call so far
        self._calls = self._masked_calls = 0

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.spec.items() if k != "name")
        return f"{self.name}({params})"
