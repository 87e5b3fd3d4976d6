"""Error messages shared by the command line, the recipe checks and the registries: the closest valid names first."""

from __future__ import annotations

import difflib


class UsageError(ValueError):
    """A recipe or command-line mistake (the command line exits with code 2)."""


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
