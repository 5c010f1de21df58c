"""Recipe YAML (plus `--set` overrides) -> a validated, frozen `Recipe`, and back to YAML.

Every problem in a recipe is collected and reported in one ConfigError, one line per problem,
each line starting with the recipe's file name and naming the key path and its line.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Iterable, Mapping, Union, get_args, get_origin, get_type_hints

import yaml

from sparsetrain.config.fit import shape_problems
from sparsetrain.config.overrides import (
    apply_overrides, section_keys, top_level_keys, unknown_key,
)
from sparsetrain.config.rules import CROSS_RULES, VALUE_RULES
from sparsetrain.config.schema import SECTIONS, Phase, Recipe
from sparsetrain.config.source import KeyPath, Origin, origin_text, path_text, read_yaml
from sparsetrain.errors import ConfigError

DEFAULT_METHOD = {"name": "dense"}
SHARE_TOLERANCE = 1e-6
# PyYAML follows YAML 1.1, which reads `1e-3` (no dot) as a string; accept it as a number.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read, override and validate a recipe file; one ConfigError lists every problem."""
    raw, lines, problems = read_yaml(path)
    return _build(raw, lines, str(path), overrides, problems)


def recipe_from_dict(mapping: Mapping[str, Any], source: str = "recipe",
                     overrides: Iterable[str] = ()) -> Recipe:
    """Validate a recipe given as plain data (what `yaml.safe_load` returns)."""
    return _build(mapping, {}, source, overrides, [])


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """Plain data with every default written out; the schedule is always a list of phases."""
    out: dict[str, Any] = {}
    for field in fields(Recipe):
        value = getattr(recipe, field.name)
        if field.name == "schedule":
            value = [{**asdict(phase), "method": dict(phase.method)} for phase in value]
        elif field.name in SECTIONS:
            value = {key: list(item) if isinstance(item, tuple) else item
                     for key, item in asdict(value).items()}
        out[field.name] = value
    return out


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML; loading it gives back an equal Recipe."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=False)


def _build(raw: Any, lines: dict[KeyPath, Origin], source: str, overrides: Iterable[str],
           problems: list[str]) -> Recipe:
    raw, lines, override_problems = apply_overrides(raw, lines, overrides)
    checker = _Checker(lines, [*problems, *override_problems])
    recipe = checker.recipe(raw)
    if checker.problems:
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in checker.problems))
    return recipe


class _Checker:
    """Walks the raw data once, building the Recipe and noting every problem on the way."""

    def __init__(self, lines: dict[KeyPath, Origin], problems: list[str]) -> None:
        self.lines = lines
        self.problems = problems
        self.phase_paths: list[KeyPath] = []  # where each built phase's method was written

    def origin(self, path: KeyPath) -> Origin | None:
        # A missing key has no line of its own; point at the nearest enclosing key instead.
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def problem(self, path: KeyPath, text: str, name: str | None = None) -> None:
        self.problems.append(f"{name or path_text(path)}: {text}{origin_text(self.origin(path))}")

    def unknown(self, path: KeyPath, valid: Iterable[str]) -> None:
        where = origin_text(self.origin(path))
        self.problems.append(f"{path_text(path)}: {unknown_key(where, path[-1], valid)}")

    def mapping(self, raw: Any, path: KeyPath, valid: list[str]) -> dict[str, Any]:
        if raw is None:
            return {}  # an empty section header means "all defaults"
        if not isinstance(raw, dict):
            self.problem(path, f"expected a mapping with keys {', '.join(valid)}, got {raw!r}")
            return {}
        for key in raw:
            if key not in valid:
                self.unknown((*path, key), valid)
        return raw

    def recipe(self, raw: Any) -> Recipe:
        if raw is not None and not isinstance(raw, dict):
            self.problem((), f"expected a mapping of recipe settings, got {raw!r}")
            raw = {}
        raw = self.mapping(raw, (), top_level_keys())
        kwargs = self.typed_fields(Recipe, raw, (), skip={"schedule", *SECTIONS})
        for name, kind in SECTIONS.items():
            section = self.mapping(raw.get(name), (name,), section_keys(name))
            kwargs[name] = kind(**self.typed_fields(kind, section, (name,)))
        kwargs["schedule"] = self.schedule(raw)
        recipe = Recipe(**kwargs)
        self.check_rules(recipe)
        return recipe

    def typed_fields(self, kind: type, raw: Mapping[str, Any], path: KeyPath,
                     skip: Iterable[str] = ()) -> dict[str, Any]:
        hints = get_type_hints(kind)
        kwargs: dict[str, Any] = {}
        for field in fields(kind):
            if field.name in skip or field.name not in raw:
                continue
            ok, value = _typed(hints[field.name], raw[field.name])
            if ok:
                kwargs[field.name] = value
            else:
                self.problem((*path, field.name), value)
        return kwargs

    def schedule(self, raw: Mapping[str, Any]) -> tuple[Phase, ...]:
        if "method" in raw and "schedule" in raw:
            self.problem(("schedule",), "give one, not both (method is a one-phase schedule)",
                         name="method, schedule")
            return ()
        if "schedule" in raw:
            return self.phases(raw["schedule"])
        method = self.method(raw.get("method", DEFAULT_METHOD), ("method",))
        if method is None:
            return ()
        self.phase_paths.append(("method",))
        return (Phase(method=method, share=1.0),)

    def phases(self, raw: Any) -> tuple[Phase, ...]:
        path: KeyPath = ("schedule",)
        if not isinstance(raw, list) or not raw:
            example = "[{method: {name: coarse, R: 8, S: 4}, share: 0.75}, ...]"
            self.problem(path, f"expected a non-empty list of phases like {example}, "
                               f"got {raw!r}")
            return ()
        phases: list[Phase] = []
        shares: list[float] = []
        valid = sorted(f.name for f in fields(Phase))
        for index, item in enumerate(raw):
            where = (*path, index)
            if not isinstance(item, dict):
                self.problem(where, f"expected a phase {{method: ..., share: ...}}, got {item!r}")
                continue
            item = self.mapping(item, where, valid)
            problems = len(self.problems)
            typed = self.typed_fields(Phase, item, where, skip={"method"})
            share = typed.get("share", Phase.share)
            if "share" in typed and not 0 < share <= 1:
                self.problem((*where, "share"), f"must be in (0, 1], got {share!r}")
            elif "share" in typed or "share" not in item:
                shares.append(share)
            if "method" not in item:
                self.problem((*where, "method"), "required: the phase's method, e.g. {name: dense}")
                continue
            method = self.method(item["method"], (*where, "method"))
            if method is not None and len(self.problems) == problems:
                phases.append(Phase(method=method, **typed))
                self.phase_paths.append((*where, "method"))
        # Checked whenever every share is readable, so a bad method does not hide a bad sum.
        if len(shares) == len(raw) and abs(math.fsum(shares) - 1.0) > SHARE_TOLERANCE:
            listed = " + ".join(f"{share:g}" for share in shares)
            self.problem(path, f"phase shares must sum to 1, got {listed} = "
                               f"{math.fsum(shares):g}")
        return tuple(phases)

    def method(self, spec: Any, path: KeyPath) -> dict[str, Any] | None:
        from sparsetrain import sparsify  # the method registry; it imports torch

        if isinstance(spec, str):
            spec = {"name": spec}  # `method: dense` is `method: {name: dense}`
        try:
            return sparsify.resolve(spec, where=path_text(path))
        except ConfigError as error:
            for line in str(error).splitlines():
                self.problems.append(line + origin_text(self._resolve_origin(line, path)))
            return None

    def _resolve_origin(self, line: str, path: KeyPath) -> Origin | None:
        # resolve() starts each line with the key path it is about; find that key's line.
        named = line.split(":", 1)[0]
        for known, origin in self.lines.items():
            if known[:len(path)] == path and path_text(known) == named:
                return origin
        return self.origin(path)

    def check_rules(self, recipe: Recipe) -> None:
        from sparsetrain import tasks  # the task registry; tasks register on import

        for path, (rule, text) in VALUE_RULES.items():
            value = _value_at(recipe, path)
            if not rule(value):
                self.problem(path, f"must be {text}, got {value!r}")
        task_names = tasks.names()
        if recipe.task not in task_names:
            where = origin_text(self.origin(("task",)))
            what = f"task {recipe.task!r}"
            self.problems.append(f"task: {unknown_key(where, recipe.task, task_names, what)}")
        for paths, rule in CROSS_RULES:
            text = rule(recipe)
            if text:
                self.problem(paths[0], text, name=", ".join(path_text(p) for p in paths))
        for phase, where in zip(recipe.schedule, self.phase_paths):
            for param, text in shape_problems(phase.method, recipe):
                self.problem((*where, param), text)


def _value_at(recipe: Recipe, path: KeyPath) -> Any:
    value: Any = recipe
    for part in path:
        value = getattr(value, str(part))
    return value


def _typed(hint: Any, value: Any) -> tuple[bool, Any]:
    """(True, value converted to the field's type) or (False, what was expected)."""
    if get_origin(hint) is tuple:  # tuple[X, ...]: a YAML list of X
        item_hint = get_args(hint)[0]
        if not isinstance(value, list):
            return False, f"expected a list, got {value!r}"
        items = [_typed(item_hint, item) for item in value]
        bad = next((text for ok, text in items if not ok), None)
        return (False, f"list item: {bad}") if bad else (True, tuple(v for _, v in items))
    members = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    optional = NoneType in members
    base = next(m for m in members if m is not NoneType)
    if value is None and optional:
        return True, None
    if base is bool and isinstance(value, bool):
        return True, value
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return True, value
    if base is float and not isinstance(value, bool):
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return True, float(value)
        if isinstance(value, float):
            return False, f"expected a finite number, got {value!r}"
    if base is str and isinstance(value, str):
        return True, value
    expected = {bool: "true or false", int: "an integer", float: "a number",
                str: "a string"}[base]
    return False, f"expected {expected}{' or null' if optional else ''}, got {value!r}"
