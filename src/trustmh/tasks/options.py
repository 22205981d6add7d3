"""Task options (a run config's `[options]`) read with one-line errors.

A bad value stops the run before anything is sent, with one line naming the option, the value and
what to write instead, e.g. `options.split = 'val': use one of human, test`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

from trustmh.errors import UserError


def option_error(name: str, value: Any, fix: str) -> UserError:
    """The one-line error for a bad option value; `fix` says what to write instead."""
    return UserError(f"options.{name} = {value!r}: {fix}")


def choice_option(options: Mapping[str, Any], name: str, allowed: Sequence[str]) -> str:
    """The option's value, one of `allowed` (default: the first)."""
    value = options.get(name, allowed[0])
    if value not in allowed:
        raise option_error(name, value, f"use one of {', '.join(allowed)}")
    return str(value)


@overload
def positive_int_option(options: Mapping[str, Any], name: str, default: int) -> int: ...
@overload
def positive_int_option(options: Mapping[str, Any], name: str, default: None) -> int | None: ...
def positive_int_option(options: Mapping[str, Any], name: str, default: int | None) -> int | None:
    """The option's value, a whole number of at least 1 (`default` when it is not set)."""
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise option_error(name, value, "use a whole number of at least 1")
    return value


def positive_number_option(options: Mapping[str, Any], name: str, default: float) -> float:
    """The option's value, a number above 0 (`default` when it is not set)."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise option_error(name, value, "use a number above 0")
    return float(value)
