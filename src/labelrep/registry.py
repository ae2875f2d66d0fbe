"""A small name -> factory registry, shared by encoders, label spaces and data sources (timm-style)."""
from __future__ import annotations

import inspect
from typing import Callable, Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, builds: bool = True):
        """``builds``: factories build an object from their options (a TypeError or ValueError they raise
        is a refusal of the user's options, said in a sentence); False for factories that do the work
        themselves (evaluations, data loading), whose errors are not the options' fault."""
        self.kind, self.builds = kind, builds
        self._factories: dict[str, Callable[..., T]] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str | None = None):
        """Decorator: ``@REGISTRY.register("resnet20")``."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
            self._descriptions[name] = doc
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        return {name: self._descriptions[name] for name in self.names()}

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            raise UserError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._factories[name]

    def check(self, name: str, **kwargs) -> Callable[..., T]:
        """The factory of ``name``, after checking it takes keyword arguments ``kwargs``; nothing is built."""
        factory = self.get(name)
        try:
            inspect.signature(factory).bind_partial(**kwargs)
        except TypeError as err:
            accepted = [p for p in inspect.signature(factory).parameters if p not in ("args", "kwargs")]
            raise UserError(f"{self.kind} {name!r} got a bad option ({err}); it accepts: "
                            f"{', '.join(accepted) or 'no options'}") from None
        return factory

    def create(self, name: str, **kwargs) -> T:
        factory = self.check(name, **kwargs)
        if not self.builds:
            return factory(**kwargs)
        try:
            return factory(**kwargs)
        except (TypeError, ValueError) as err:  # an option of the wrong type or value (seed=x)
            raise UserError(f"{self.kind} {name!r} cannot be built from the options given ({err})") from None
