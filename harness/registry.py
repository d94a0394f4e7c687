"""One small registry per kind of pluggable code (verifiers, generators, engines).

YAML refers to code only by registered name; a duplicate name raises and a miss says "did you mean".
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "choose one of: " + ", ".join(sorted(choices)) if choices else "none are registered"


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise HarnessError(f"unknown {self.kind} '{name}': {did_you_mean(name, list(self._items))}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
