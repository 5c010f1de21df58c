"""A name -> class table filled by a decorator: the one shape of the task and method registries."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

Registered = TypeVar("Registered", bound=type)


class Registry(Generic[Registered]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, Registered] = {}

    def register(self, name: str) -> Callable[[Registered], Registered]:
        """Class decorator: sets `cls.name` and refuses a name used twice."""

        def add(cls: Registered) -> Registered:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._classes[name].__module__} and {cls.__module__})")
            cls.name = name
            self._classes[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __getitem__(self, name: str) -> Registered:
        return self._classes[name]
