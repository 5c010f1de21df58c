"""The `sparsetrain` command group; each module in this folder adds one command.

A module here defines `command` (a click command); adding a command is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparsetrain")
def main() -> None:
    """Sparsified backward propagation for LSTM training: run, sweep, table, bench."""


for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        main.add_command(importlib.import_module(f"{__name__}.{_module.name}").command)
