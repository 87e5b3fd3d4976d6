"""A cached description of the command line, so that ``--help`` and mistakes are answered without importing torch.

The real parser (``HfArgumentParser`` over three dataclasses, one of them ``TrainingArguments``) needs torch and
transformers, about three seconds before the first word is printed. Every time it is built, its options, their
value types and choices, the recipe sections' keys and the help text are written to
``$HF_HOME/r2kd_hf/cli/<fingerprint>.json``. The next invocation reads that file first: ``--help`` is printed from
it, and an unknown key, a value outside its choices or a malformed number is reported (exit 2) in a fraction of a
second. A valid command falls through to the real parser, which stays the only authority; nothing is accepted on
the snapshot's word.

The fingerprint covers the package's source files (size and modification time), the transformers version and the
Python version, so an edit or an upgrade never serves a stale answer. A script that imports ``r2kd_hf``'s
registries before calling the command line (to register its own loss or view) skips the choice checks, since the
snapshot cannot know its additions.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

from .messages import UsageError, invalid_choice, unknown_key_message

VERSION = 1
# Choices validated by r2kd_hf itself (from its registries), and the module holding each registry.
CHOICE_NAMES = {"loss_name": "distillation loss", "corruptions": "corruption"}  # as the registries name them in their own errors
REGISTRY_FIELDS = {"loss_name": "r2kd_hf.losses.registry", "second_view": "r2kd_hf.augment",
                   "teacher_prune_method": "r2kd_hf.pruning.teacher"}


def cache_dir() -> str:
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(home, "r2kd_hf", "cli")


def fingerprint() -> str:
    from importlib import metadata

    package = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha1(f"{VERSION}|{sys.version}".encode())
    try:
        digest.update(metadata.version("transformers").encode())
    except metadata.PackageNotFoundError:
        digest.update(b"no-transformers")
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            stat = os.stat(os.path.join(root, name))
            digest.update(f"{os.path.relpath(os.path.join(root, name), package)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _recipe_key(recipe: str | None) -> str:
    if not recipe or not os.path.exists(recipe):
        return "none"
    stat = os.stat(recipe)
    return hashlib.sha1(f"{os.path.abspath(recipe)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def _path() -> str:
    return os.path.join(cache_dir(), f"{fingerprint()}.json")


def write(parser, sections: dict[str, list[str]], choices: dict[str, list[str]], recipe: str | None) -> None:
    """Record ``parser`` (built for ``recipe``); best effort: a read-only cache only costs the speed-up."""
    options: dict[str, dict[str, Any]] = {}
    for action in parser._actions:  # argparse's (not transformers') list of options
        for flag in action.option_strings:
            entry: dict[str, Any] = {"dest": action.dest, "nargs": action.nargs if isinstance(action.nargs, (int, str)) else None}
            if action.choices is not None:
                entry["choices"] = [str(getattr(c, "value", c)) for c in action.choices]
            if action.type in (int, float):
                entry["type"] = action.type.__name__
            options[flag] = entry
    path = _path()
    try:
        existing = _read(path) or {}
        helps = dict(existing.get("help", {}))
        helps[_recipe_key(recipe)] = parser.format_help()
        snapshot = {"version": VERSION, "options": options, "sections": sections, "choices": choices, "help": helps}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + f".{os.getpid()}.tmp", "w", encoding="utf-8") as handle:
            json.dump(snapshot, handle)
        os.replace(path + f".{os.getpid()}.tmp", path)
    except OSError:
        pass


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            snapshot = json.load(handle)
        return snapshot if snapshot.get("version") == VERSION else None
    except (OSError, ValueError):
        return None


def read() -> dict[str, Any] | None:
    return _read(_path())


def help_text(snapshot: dict[str, Any], recipe: str | None) -> str | None:
    return snapshot.get("help", {}).get(_recipe_key(recipe))


def check(snapshot: dict[str, Any], argv: list[str], recipe_values: dict[str, Any]) -> None:
    """Raise ``UsageError`` for an unknown flag, a value outside its choices or a malformed number."""
    options = snapshot["options"]
    fields = [name for names in snapshot["sections"].values() for name in names]
    given: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            break
        if token.startswith("--"):
            flag, _, inline = token.partition("=")
            if flag not in options:
                raise UsageError(unknown_key_message(flag[2:], fields, "on the command line", None, flag=True))
            values: list[str] = [inline] if inline else []
            if not inline:
                j = i + 1
                while j < len(argv) and not argv[j].startswith("--"):
                    values.append(argv[j])
                    j += 1
                i = j - 1
            given[options[flag]["dest"]] = values
        i += 1
    for dest, values in given.items():
        _check_values(snapshot, dest, values, f"--{dest}")
    for key, value in recipe_values.items():
        if key not in given and value is not None and not isinstance(value, (dict, bool)):
            _check_values(snapshot, key, [str(v) for v in value] if isinstance(value, list) else [str(value)], f"{key!r} in the recipe")


def _check_values(snapshot: dict[str, Any], dest: str, values: list[str], where: str) -> None:
    entry = next((e for e in snapshot["options"].values() if e["dest"] == dest), None)
    if entry is None:
        return
    choices, what = entry.get("choices"), f"value for {where}"
    if dest in snapshot["choices"] and REGISTRY_FIELDS.get(dest) not in sys.modules:
        choices, what = snapshot["choices"][dest], CHOICE_NAMES.get(dest, dest)
    for value in values:
        if choices is not None and value.lower() not in {c.lower() for c in choices}:  # lenient: the parser decides
            raise UsageError(invalid_choice(what, value, choices))
        if entry.get("type") in ("int", "float") and value.lower() not in ("none", "null"):
            try:
                (int if entry["type"] == "int" else float)(value)
            except ValueError:
                raise UsageError(f"Invalid value {value!r} for {where}: expected a number ({entry['type']}).") from None
