"""Field helpers and error messages shared by the config dataclasses, the recipe checks, the registries and the
loaders: the closest valid names first, and what to do."""

from __future__ import annotations

import difflib
import os
from dataclasses import field
from typing import Any, Callable


def option(default: Any = None, help: str = "", factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its ``--help`` text (``factory`` for mutable defaults)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


class UsageError(ValueError):
    """A recipe, command-line or input mistake found before training (the command line exits with code 2)."""


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


def invalid_choice(what: str, value: object, choices: list[str] | tuple[str, ...], extra: str = "") -> str:
    """``Unknown <what> 'x'. Did you mean 'y'? Valid choices: a, b.`` (+ ``extra``)."""
    close = difflib.get_close_matches(str(value).lower(), [str(c) for c in choices], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown {what} {value!r}.{hint} Valid choices: {', '.join(map(str, choices))}.{(' ' + extra) if extra else ''}"


def unknown_key_message(key: str, valid: list[str], where: str, section: str | None, flag: bool = False) -> str:
    """The closest valid names and where the full list is; short sections list every key."""
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    shown = "--" + key if flag else repr(key)
    hint = f" Did you mean {', '.join(('--' + c) if flag else c for c in close)}?" if close else ""
    if section is not None and len(valid) <= 30:
        return f"Unknown key {shown} {where}.{hint} Valid keys of {section!r}: {', '.join(valid)}."
    return (f"Unknown {'option' if flag else 'key'} {shown} {where}.{hint} Every option, with its help, is listed by "
            "`python scripts/distill.py --help`; `--print_recipe` shows the resolved values.")


def hub_unreachable(what: str, name: str, error: Exception, flags: tuple[str, ...] = ("HF_HUB_OFFLINE",)) -> OSError:
    """``name`` is neither a local folder nor served by the Hub: why (an offline flag or not), and what to do."""
    offline = next((v for v in flags if os.environ.get(v, "0").lower() in ("1", "true", "yes")), None)
    fix = (f"{offline} is set: unset it, or download it first where there is network (`hf download <repo_id> "
           "--local-dir <dir>`) and pass the local folder" if offline else
           "check the repo id, HF_ENDPOINT, your token (`hf auth login`) and the network, or pass a local folder")
    return OSError(f"Could not load {what} {name!r}: no local folder has that name and the Hub did not serve it "
                   f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}). {fix}.")
