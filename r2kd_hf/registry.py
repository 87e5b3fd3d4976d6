"""One registry type for everything a recipe names: distillation losses, second views and teacher pruners.

Every entry has a name (lower case), the object, the context it declares it needs (checked against what its kind
can supply) and a citation for model cards. Recipes and the command line take their choices from the registries,
and users add their own with the ``register_*`` decorators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .messages import invalid_choice


@dataclass(frozen=True)
class Entry:
    """A registered object: ``name``, the object (``fn``), the context it ``needs``, its ``citation`` (BibTeX)."""

    name: str
    fn: Any
    needs: tuple[str, ...] = ()
    citation: str = ""


class Registry:
    """Name -> :class:`Entry`. Registering a taken name with another object raises; names are case-insensitive.

    Args:
        kind: what the entries are, for messages ("distillation loss").
        needs: the context an entry may declare (e.g. ``("labels", "epoch")`` for losses).
        decorator: how users register one, for messages (``"@r2kd_hf.register_loss('name')"``).
    """

    def __init__(self, kind: str, needs: tuple[str, ...], decorator: str):
        self.kind, self.allowed_needs, self.decorator = kind, needs, decorator
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, needs: tuple[str, ...] = (), citation: str = "") -> Callable[[Any], Any]:
        key = name.lower()
        unknown = sorted(set(needs) - set(self.allowed_needs))
        if unknown:
            raise ValueError(f"The {self.kind} {name!r} declares unknown needs {unknown}; valid: {', '.join(self.allowed_needs) or '(none)'}.")

        def decorator(obj: Any) -> Any:
            taken = self._entries.get(key)
            if taken is not None and taken.fn is not obj:
                raise ValueError(f"A {self.kind} named {key!r} is already registered ({getattr(taken.fn, '__module__', '?')}). Pick another name.")
            self._entries[key] = Entry(key, obj, tuple(needs), citation)
            return obj

        return decorator

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def entry(self, name: str, extra_choices: tuple[str, ...] = ()) -> Entry:
        key = str(name).lower()
        if key not in self._entries:
            raise ValueError(invalid_choice(self.kind, name, [*extra_choices, *self._entries], f"Register your own with {self.decorator}."))
        return self._entries[key]

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
