"""One small registry per kind of pluggable code (verifiers, generators, engines, methods).

YAML refers to code only by registered name; a duplicate name raises and a miss says "did you mean".
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "choose one of: " + ", ".join(sorted(choices)) if choices else "none are registered"


class AlreadyRegistered(ValueError):
    """A second registration under a taken name (names are global: built-ins and every plugin share them)."""

    def __init__(self, kind: str, name: str, existing: object) -> None:
        super().__init__(f"{kind} '{name}' is already registered")
        self.kind, self.name, self.existing = kind, name, existing


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise AlreadyRegistered(self.kind, name, self._items[name])
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise HarnessError(f"unknown {self.kind} '{name}': {self.fix(name)}") from None

    def fix(self, name: str) -> str:
        """What to do about a name that is not registered: the near miss, else the choices and the plugin hint."""
        hint = did_you_mean(name, list(self._items))
        if hint.startswith("did you mean"):
            return hint
        return (
            f"{hint}; if a plugin defines it, load the plugin with --plugin MODULE_OR_FILE or $HARNESS_PLUGINS "
            "(harness/plugins.py)"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)


class LazyRegistry(Registry[T]):
    """A registry whose built-ins are modules imported by name the first time it is used (registered, asked, listed).
    For a kind whose built-ins depend on modules that themselves ask the registry (a method trains through the
    pipeline, whose backends check recipes, and recipes ask the methods for their sections): importing them when
    the registry module loads would be an import circle. The built-ins still register before anything else, so a
    plugin that reuses a built-in name is the one refused."""

    def __init__(self, kind: str, builtins: tuple[str, ...]) -> None:
        self._builtins, self._loaded = builtins, False
        super().__init__(kind)

    @property
    def _items(self) -> dict[str, T]:  # type: ignore[override]
        if not self._loaded:
            self._loaded = True  # first: a built-in registers while it is imported, and must not import them again
            for module in self._builtins:
                importlib.import_module(module)
        return self._store

    @_items.setter
    def _items(self, value: dict[str, T]) -> None:
        self._store = value
