"""Tasks register by name; adding a task is adding a module; a task never touches kernels."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import sparsetrain.tasks as tasks
from sparsetrain import ConfigError
from sparsetrain.tasks.lm import LanguageModel

TASK_FOLDER = Path(tasks.__file__).parent


def test_lm_is_registered_under_its_name():
    assert "lm" in tasks.names()
    assert tasks.get_task("lm") is LanguageModel
    assert LanguageModel.metric.name == "perplexity" and LanguageModel.metric.lower_is_better


def test_an_unknown_task_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"task: unknown task 'lmm'; valid: .*lm"):
        tasks.get_task("lmm")


def test_a_second_task_with_a_taken_name_is_rejected():
    with pytest.raises(ValueError, match="registered twice"):
        tasks.register_task("lm")(type("Another", (LanguageModel,), {}))
    assert tasks.get_task("lm") is LanguageModel


def test_every_module_in_the_task_folder_is_imported():
    modules = [p.stem for p in TASK_FOLDER.glob("*.py") if not p.stem.startswith("_")]
    assert all(f"sparsetrain.tasks.{name}" in sys.modules for name in modules)


def test_no_task_module_imports_the_kernels():
    for path in TASK_FOLDER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("sparsetrain.kernels") for n in names), path
