"""Typed dataclass fields: :func:`option` (a default with its ``--help`` text) and the validation every field gets
once, in its dataclass's ``__post_init__`` (:func:`check_range`, :class:`FieldError`, which the recipe parser
completes with where the value came from)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Callable

from .messages import UsageError


def option(default: Any = None, help: str = "", factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its ``--help`` text (``factory`` for mutable defaults)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


class FieldError(UsageError):
    """An out-of-range or invalid value of one named field; the recipe parser adds where the value came from."""

    def __init__(self, field: str, value: object, allowed: str, hint: str = ""):
        self.field = field
        super().__init__(f"{field}={value!r} is not allowed: {allowed}.{(' ' + hint) if hint else ''}")


def check_range(values: object, field: str, low: float | None = None, high: float | None = None, low_open: bool = False,
                optional: bool = False, hint: str = "", high_open: bool = False) -> None:
    """Raise :class:`FieldError` unless ``low <(=) values.field <(=) high`` (``None`` passes when ``optional``)."""
    value = getattr(values, field)
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        bounds = [f"{'>' if low_open else '>='} {low:g}" if low is not None else None,
                  f"{'<' if high_open else '<='} {high:g}" if high is not None else None]
        raise FieldError(field, value, "it must be " + " and ".join(b for b in bounds if b), hint)
