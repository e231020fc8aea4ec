"""One registry type for every kind of plug-in (sinks, activations, optimizers, named queries, ...)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Registry(Generic[T]):
    """Implementations of one kind, chosen by name; an unknown name is a ValueError listing the choices.

    An entry is either added as an object (`add`, `register`) or declared lazily as "module:attribute" (`lazy`):
    a lazy entry's module is imported on first `get`, so checking a name (validating a config) never loads
    what the implementation needs (TensorFlow, for the PINN's plug-ins).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            self.add(name, entry)
            return entry

        return decorator

    def add(self, name: str, entry: T) -> None:
        self._check_new(name)
        self._entries[name] = entry

    def lazy(self, name: str, target: str) -> None:
        """Declare `name` as the attribute `target` ("package.module:attribute"), imported on first use."""
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise ValueError(f"{self.kind} {name!r}: lazy target must be 'module:attribute', got {target!r}")
        self._check_new(name)
        self._lazy[name] = target

    def _check_new(self, name: str) -> None:
        if name in self._entries or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is registered twice")

    def check(self, name: str) -> str:
        """`name` if it is registered, else the ValueError listing the choices; never loads a lazy entry."""
        if name not in self:
            choices = ", ".join(self.names()) or "none registered"
            raise ValueError(f"unknown {self.kind} {name!r} (choose from: {choices})")
        return name

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        target = self._lazy.get(self.check(name))
        assert target is not None  # check() passed and the name is not loaded yet: it is lazy
        module, _, attribute = target.partition(":")
        loaded = cast(T, getattr(importlib.import_module(module), attribute))
        self._entries[name] = loaded
        return loaded

    def names(self) -> list[str]:
        return sorted({*self._entries, *self._lazy})

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
