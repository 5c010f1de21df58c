"""User mistakes become one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from sparsetrain.errors import ConfigError

USER_ERROR_EXIT_CODE = 2


class UserError(click.ClickException):
    """A mistake in a recipe, flag or data file: printed as one line, exit code 2."""

    exit_code = USER_ERROR_EXIT_CODE


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn `ConfigError` raised anywhere below a command into a `UserError`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            raise UserError(str(error)) from None

    return wrapper
