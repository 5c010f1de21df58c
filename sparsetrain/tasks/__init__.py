"""Task plugins: each module here registers one task with `@register_task("name")`.

Adding a task is adding a file: every module in this folder whose name does not start with
`_` is imported below, so its decorator runs. A task never imports `sparsetrain.kernels`; it
builds models from `sparsetrain.nn` layers and lets the trainer pick the sparsifier.
"""

from __future__ import annotations

import importlib
import pkgutil

from sparsetrain.errors import ConfigError
from sparsetrain.registry import Registry
from sparsetrain.tasks.base import Metric, Step, Task

_TASKS: Registry = Registry("task")
register_task = _TASKS.register
names = _TASKS.names


def get_task(name: str) -> type[Task]:
    """The Task class registered as `name`; an unknown name lists the valid ones."""
    if name not in _TASKS:
        raise ConfigError(f"task: unknown task {name!r}; valid: {', '.join(names())}")
    return _TASKS[name]


for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Metric", "Step", "Task", "get_task", "names", "register_task"]
