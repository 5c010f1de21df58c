"""`--set key.path=value`: change the raw recipe mapping before it is validated.

Values are YAML scalars (`--set train.lr=0.5`, `--set train.clip=null`), so a flag means what
the same text would mean in the file. A path must exist in the schema; method parameters are
left for `sparsify.resolve` to judge, so `--set method.S=4` needs no list of parameters here.

Setting a whole `schedule` on a recipe that uses `method` (or a whole `method` on one that uses
`schedule`) replaces it: `--set 'schedule=[{method: coarse, share: 0.75}, ...]'` turns a dense
recipe into a dense-after-sparse one without editing the file.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import fields
from typing import Any, Iterable, Mapping

import yaml

from sparsetrain.config.schema import SECTIONS, Phase, Recipe
from sparsetrain.config.source import KeyPath, Origin, path_text

METHOD_KEYS = ("method", "schedule")


def top_level_keys() -> list[str]:
    """What a recipe may say at the top: every Recipe field, with `method` as `schedule`'s
    one-phase shorthand."""
    return sorted({f.name for f in fields(Recipe)} | set(METHOD_KEYS))


def section_keys(section: str) -> list[str]:
    return sorted(f.name for f in fields(SECTIONS[section]))


def unknown_key(where: str, key: Any, valid: Iterable[str], what: str = "key") -> str:
    """`unknown key (line 7); did you mean hidden_size? valid: ...`: every unknown name's
    message; `where` is the origin text that follows the first words."""
    valid = list(valid)
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"; did you mean {close[0]}? " if close else "; "
    return f"unknown {what}{where}{hint}valid: {', '.join(valid)}"


def apply_overrides(raw: Any, lines: dict[KeyPath, Origin], overrides: Iterable[str]
                    ) -> tuple[Any, dict[KeyPath, Origin], list[str]]:
    """A changed copy of `raw` and `lines`, plus one problem line per bad override."""
    raw = copy.deepcopy(raw)
    lines = dict(lines)
    problems: list[str] = []
    for text in overrides:
        origin = f"--set {text}"
        key, sep, value_text = text.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set {text}: expected key.path=value, e.g. train.lr=0.5")
            continue
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else None
        except yaml.YAMLError:
            value = value_text  # not YAML (e.g. an unbalanced quote): keep it as written
        if not isinstance(raw, dict):
            problems.append(f"--set {text}: the recipe is not a mapping")
            continue
        path, problem = _schema_path(key, raw)
        if problem:
            problems.append(f"--set {text}: {problem}")
            continue
        problem = _assign(raw, path, value)
        if problem:
            problems.append(f"--set {text}: {problem}")
            continue
        if len(path) == 1 and path[0] in METHOD_KEYS:
            other = "schedule" if path[0] == "method" else "method"
            raw.pop(other, None)
            _forget(lines, (other,))
        _forget(lines, path)
        lines[path] = origin
    return raw, lines, problems


def _forget(lines: dict[KeyPath, Origin], path: KeyPath) -> None:
    for known in [p for p in lines if p[:len(path)] == path]:
        del lines[known]


def _schema_path(key: str, raw: Mapping[str, Any]) -> tuple[KeyPath, str | None]:
    """The key path for `a.b.c`, or why it names nothing in the schema."""
    parts = key.split(".")
    if any(not part for part in parts):
        return (), f"{key!r} has an empty part; expected key.path=value"
    head = parts[0]
    if head not in top_level_keys():
        return (), f"{head}: " + unknown_key("", head, top_level_keys())
    if head in SECTIONS:
        if len(parts) == 1:
            return (head,), None
        valid = section_keys(head)
        if parts[1] not in valid:
            return (), f"{head}.{parts[1]}: " + unknown_key(f" in {head}", parts[1], valid)
        if len(parts) > 2:
            return (), f"{head}.{parts[1]} is a single value; it has no {parts[2]}"
        return (head, parts[1]), None
    if head == "method":
        if "schedule" in raw and len(parts) > 1:
            return (), ("the recipe has a schedule, not a method; set "
                        f"schedule.<phase>.{key} instead")
        if len(parts) > 2:
            return (), f"method.{parts[1]} is a single value; it has no {parts[2]}"
        return tuple(parts), None
    if head == "schedule":
        return _schedule_path(parts, raw)
    if len(parts) > 1:
        return (), f"{head} is a single value; it has no {parts[1]}"
    return (head,), None


def _schedule_path(parts: list[str], raw: Mapping[str, Any]) -> tuple[KeyPath, str | None]:
    if len(parts) == 1:
        return ("schedule",), None
    schedule = raw.get("schedule")
    if not isinstance(schedule, list):
        return (), "the recipe has no schedule list to index (it uses method)"
    if not parts[1].isdigit() or int(parts[1]) >= len(schedule):
        return (), (f"schedule.{parts[1]}: expected a phase number 0..{len(schedule) - 1}")
    index = int(parts[1])
    path: KeyPath = ("schedule", index)
    if len(parts) == 2:
        return path, None
    phase_keys = sorted(f.name for f in fields(Phase))
    if parts[2] not in phase_keys:
        return (), (f"{path_text((*path, parts[2]))}: "
                    + unknown_key(" in a phase", parts[2], phase_keys))
    if parts[2] != "method" and len(parts) > 3 or len(parts) > 4:
        return (), f"{'.'.join(parts[:-1])} is a single value; it has no {parts[-1]}"
    return (*path, *parts[2:]), None


def _assign(raw: dict[str, Any], path: KeyPath, value: Any) -> str | None:
    """Set raw[path] = value, creating missing mappings on the way."""
    target: Any = raw
    for depth, part in enumerate(path[:-1]):
        if isinstance(target, list):
            target = target[part]  # the index was checked against the list's length
            continue
        child = target.get(part)
        if child is None:
            child = target[part] = {}
        elif isinstance(child, str) and part == "method":
            child = target[part] = {"name": child}  # `method: coarse` shorthand
        if not isinstance(child, (dict, list)):
            return f"{path_text(path[:depth + 1])} is {child!r}, not a mapping"
        target = child
    target[path[-1]] = value
    return None
