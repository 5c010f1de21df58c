"""Read recipe YAML into plain data plus the line each key came from.

Messages about a recipe point at a line, so the YAML is composed into nodes (which carry
`start_mark.line`) and walked once: values come out as plain Python data, and `lines` maps
every key path, e.g. `("schedule", 0, "method", "S")`, to its 1-based line, or to the text of
the `--set` that last changed it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import yaml

from sparsetrain.errors import ConfigError

KeyPath = tuple[Union[str, int], ...]
Origin = Union[int, str]  # a YAML line number, or the `--set ...` text that set the value


def path_text(path: KeyPath) -> str:
    """`("schedule", 0, "method", "S")` -> `schedule[0].method.S`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<top level>"


def origin_text(origin: Origin | None) -> str:
    if origin is None:
        return ""
    if isinstance(origin, int):
        return f" (line {origin})"
    return f" (from {origin})"


def read_yaml(path: str | Path, kind: str = "recipe"
              ) -> tuple[Any, dict[KeyPath, Origin], list[str]]:
    """The document's data, the line of every key path, and duplicate-key problems.

    A missing file or a YAML syntax error is one ConfigError naming the file (and line) and
    what the file should be (`kind`: recipe, sweep).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {kind} file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a {kind} .yaml file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read {kind} ({error})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> tuple[Any, dict[KeyPath, Origin], list[str]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}, []
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(error.problem or error.context or "syntax error").split())
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: malformed YAML: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, Origin] = {}
    duplicates: list[str] = []
    _walk(node, (), lines, duplicates)
    return data, lines, duplicates


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, Origin],
          duplicates: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a complex key is reported as an unknown key by validation
            key = key_node.value
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if child in lines:
                # PyYAML keeps the last value silently; a recipe that says two things is a bug.
                duplicates.append(f"{path_text(child)}: duplicate key (lines {lines[child]} "
                                  f"and {line}); keep one")
            lines[child] = line
            _walk(value_node, child, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, duplicates)
