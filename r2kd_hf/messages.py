"""Error messages shared by the recipe checks, the registries and the loaders: the closest valid names first, and
what to do. (Field declarations and their range checks are :mod:`r2kd_hf.fields`.)"""

from __future__ import annotations

import difflib
import os


class UsageError(ValueError):
    """A recipe, command-line or input mistake found before training (the command line exits with code 2)."""


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
