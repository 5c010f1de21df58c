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


_METHODS: dict[str, type[Sparsifier]] = {}


def register_method(name: str) -> Callable[[type[Sparsifier]], type[Sparsifier]]:
    def add(cls: type[Sparsifier]) -> type[Sparsifier]:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return add


def names() -> list[str]:
    return sorted(_METHODS)


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


def decision_values(tensor: torch.Tensor) -> torch.Tensor:
    """Selections are decided on at least float32 values, whatever the training dtype."""
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()


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
        self._sums: torch.Tensor | None = None
        self._calls = 0

    @property
    def acts_on(self) -> str:
        """Which gradient the layer hands to this method: "dnet" (N x 4H) or "dh" (N x H)."""
        return "dh" if self.spec.get("target") == "dh" else "dnet"

    @classmethod
    def cross_check(cls, params: Mapping[str, Any]) -> list[str]:
        """Rules that tie two parameters; each problem starts with the parameter's name."""
        return []

    def keep_mask(self, dnet: torch.Tensor) -> torch.Tensor | None:
        """A bool tensor of dnet's shape (True = kept), or None when everything is kept."""
        raise NotImplementedError

    def compact(self, dnet: torch.Tensor) -> Compact:
        raise ConfigError(f"method {self.name} is unstructured: it has no compact form")

    def expand(self, compact: Compact, shape: tuple[int, int]) -> torch.Tensor:
        raise ConfigError(f"method {self.name} is unstructured: it has no compact form")

    def __call__(self, dnet: torch.Tensor) -> torch.Tensor:
        mask = self.keep_mask(dnet)
        if mask is None:
            self._record(None, dnet, dnet)
            return dnet
        kept = dnet * mask
        self._record(mask, dnet, kept)
        return kept

    def _record(self, mask: torch.Tensor | None, dnet: torch.Tensor, kept: torch.Tensor) -> None:
        # Sums stay on the device so a training step never waits for the host.
        self._calls += 1
        if mask is None:
            values = torch.tensor([0.0, 1.0, 1.0], device=dnet.device)
        else:
            full = decision_values(dnet).double()
            part = decision_values(kept).double()
            total_energy = full.square().sum()
            kept_energy = part.square().sum()
            inner = (full * part).sum()
            safe_total = torch.where(total_energy > 0, total_energy, 1.0)
            energy_ratio = torch.where(total_energy > 0, kept_energy / safe_total, 1.0)
            norms = (kept_energy * total_energy).sqrt()
            cosine = torch.where(norms > 0, inner / torch.where(norms > 0, norms, 1.0),
                                 torch.where(total_energy > 0, 0.0, 1.0))
            sparsity = 1.0 - mask.double().mean()
            values = torch.stack([sparsity, energy_ratio, cosine]).float()
        self._sums = values if self._sums is None else self._sums + values.to(self._sums.device)

    def stats(self) -> dict[str, float]:
        """Averages of sparsity, kept energy and cosine since the last read; then reset."""
        if self._calls == 0 or self._sums is None:
            return {}
        means = (self._sums / self._calls).tolist()
        self._sums, self._calls = None, 0
        return dict(zip(("sparsity", "kept_energy", "cosine"), means))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.spec.items() if k != "name")
        return f"{self.name}({params})"
