"""A sweep file -> the list of runs it names, each a base recipe plus `--set` overrides.

    base: ptb-lm.yaml              # path relative to the sweep file
    set: {backend: cupy}           # for every run
    variants:                      # explicit runs; name optional
      - {name: dense, set: {method: dense}}
    grid:                          # cartesian product, key path -> values
      method.K: [2, 4, 6]

With both `variants` and `grid`, every variant runs at every grid point. A run's name is the
variant's name, or is built from the values it varies (`coarse-R8-S4`, `K4`), so the same file
always gives the same names; the names are the run directories under the sweep root. Every run
is validated (the full recipe rules) before any starts, and all problems are reported at once.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsetrain.config.load import load_recipe
from sparsetrain.config.schema import Recipe
from sparsetrain.config.source import read_yaml
from sparsetrain.errors import ConfigError

SWEEP_KEYS = ("base", "set", "variants", "grid")
VARIANT_KEYS = ("name", "set")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class SweepRun:
    name: str
    overrides: tuple[str, ...]  # `key.path=value` texts, exactly as `sparsetrain run --set`
    recipe: Recipe


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    base: Path
    runs: tuple[SweepRun, ...]

    def plain(self) -> dict[str, Any]:
        """What `sweep.yaml` at the sweep root records."""
        return {"sweep": str(self.path), "base": str(self.base),
                "runs": [{"name": run.name, "set": list(run.overrides)} for run in self.runs]}


def load_sweep(path: str | Path, overrides: tuple[str, ...] = ()) -> SweepSpec:
    """The sweep's runs; `overrides` (`--set` texts) apply to every run, after its own."""
    path = Path(path)
    raw, _, problems = read_yaml(path, "sweep")
    if problems:
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in problems))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(SWEEP_KEYS)}")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]}; valid: {', '.join(SWEEP_KEYS)}")
    if not isinstance(raw.get("base"), str):
        raise ConfigError(f"{path}: base: required, the recipe file every run starts from "
                          "(relative to the sweep file)")
    base = (path.parent / raw["base"]).resolve()
    common = _settings(raw.get("set"), f"{path}: set")
    points = _grid(raw.get("grid"), path) or [((), "")]
    variants = _variants(raw.get("variants"), path) or [((), "")]
    if raw.get("grid") is None and raw.get("variants") is None:
        raise ConfigError(f"{path}: give variants, grid or both; the sweep names no run")
    named: list[tuple[str, tuple[str, ...]]] = []
    for (variant_set, variant_name), (grid_set, grid_name) in itertools.product(variants, points):
        name = "-".join(part for part in (variant_name, grid_name) if part)
        named.append((name, (*common, *variant_set, *grid_set, *overrides)))
    return SweepSpec(path, base, tuple(_validated(named, base, path)))


def _validated(named: list[tuple[str, tuple[str, ...]]], base: Path, path: Path
               ) -> list[SweepRun]:
    problems, runs, seen = [], [], set()
    failing: dict[str, list[str]] = {}  # problem -> the runs that have it (a base's: all)
    for name, overrides in named:
        if name in seen:
            problems.append(f"{path}: two runs are named {name!r}; give the variants names")
            continue
        seen.add(name)
        try:
            runs.append(SweepRun(name, overrides, load_recipe(base, overrides)))
        except ConfigError as error:
            for line in str(error).splitlines():
                failing.setdefault(line, []).append(name)
    for line, names in failing.items():
        who = "every run" if len(names) == len(seen) else "run " + ", ".join(names)
        problems.append(f"{path}: {who}: {line}")
    if problems:
        raise ConfigError("\n".join(problems))
    return runs


def _settings(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of key.path: value, got {raw!r}")
    # JSON is YAML, so each value reads back exactly as --set reads it.
    return tuple(f"{key}={json.dumps(value)}" for key, value in raw.items())


def _variants(raw: Any, path: Path) -> list[tuple[tuple[str, ...], str]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: variants: expected a non-empty list of "
                          "{name: ..., set: {key.path: value}}")
    variants = []
    for index, item in enumerate(raw):
        where = f"{path}: variants[{index}]"
        if not isinstance(item, dict) or set(item) - set(VARIANT_KEYS):
            raise ConfigError(f"{where}: expected a mapping with keys name, set")
        settings = item.get("set") or {}
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or _UNSAFE.search(name)
                                 or name in (".", "..")):
            raise ConfigError(f"{where}.name: {name!r} must be a folder name of letters, "
                              "digits, '.', '_', '+', '-'")
        variants.append((_settings(settings, f"{where}.set"), name or _name_of(settings)))
    return variants


def _grid(raw: Any, path: Path) -> list[tuple[tuple[str, ...], str]]:
    if raw is None:
        return []
    if not isinstance(raw, dict) or not raw or not all(
            isinstance(values, list) and values for values in raw.values()):
        raise ConfigError(f"{path}: grid: expected key.path: [value, ...] with at least one "
                          "value each")
    keys = list(raw)
    points = []
    for values in itertools.product(*(raw[key] for key in keys)):
        settings = dict(zip(keys, values))
        points.append((_settings(settings, f"{path}: grid"), _name_of(settings)))
    return points


def _name_of(settings: dict[str, Any]) -> str:
    """`{method.R: 8, method.S: 4}` -> `R8-S4`; `{method: {name: coarse, R: 8}}` -> `coarse-R8`;
    a schedule -> its phases joined by `+`, each with its share (`coarse-R8-S4_0.75+dense_0.25`)."""
    parts = [_slug(key.split(".")[-1], value) for key, value in settings.items()]
    return "-".join(part for part in parts if part) or "base"


def _slug(key: str, value: Any) -> str:
    if key in ("name", "method") and isinstance(value, str):
        return _UNSAFE.sub("_", value)
    if isinstance(value, dict):
        name = value.get("name") if key != "schedule" else None
        rest = [_slug(k, v) for k, v in value.items() if k != "name"]
        return "-".join(part for part in ([_slug("name", name)] if name else []) + rest if part)
    if isinstance(value, list):
        if key == "schedule":
            return "+".join(_phase_slug(phase) for phase in value)
        return "_".join(_slug("", item) for item in value)
    return _UNSAFE.sub("_", f"{key}{value}")


def _phase_slug(phase: Any) -> str:
    if not isinstance(phase, dict):
        return _UNSAFE.sub("_", str(phase))
    method = phase.get("method", "dense")
    text = _slug("method", method)
    if "share" in phase:
        text += f"_{float(phase['share']):.3g}"
    if phase.get("restart_lr"):
        text += "r"
    return text
