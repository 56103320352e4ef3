"""The types ``@routed`` returns, for type checkers and annotations.

Loaded on first use (``resilient_routing.Routed`` and the others): making Protocol classes
costs import time that a program which never names them should not pay.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from ._result import RouteResult

__all__ = ["AsyncRouted", "AsyncRoutedClassmethod", "Routed", "RoutedClassmethod"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
T = TypeVar("T")


class Routed(Protocol[P, T]):
    """A sync function routed across providers (what ``@routed`` returns)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Route the call; return the response of the provider that succeeded."""
        ...

    def execute(self, *args: P.args, **kwargs: P.kwargs) -> RouteResult[T]:
        """Route the call; return the response with its routing metadata."""
        ...

    def __get__(
        self: Routed[Concatenate[Any, P2], T], instance: Any, owner: type | None = None
    ) -> Routed[P2, T]:
        """Bind like a function: a method's provider parameter comes after ``self``."""
        ...


class RoutedClassmethod(Protocol[P, T]):
    """A routed classmethod or staticmethod (``@routed`` above one): binding keeps ``P``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Route the call; return the response of the provider that succeeded."""
        ...

    def execute(self, *args: P.args, **kwargs: P.kwargs) -> RouteResult[T]:
        """Route the call; return the response with its routing metadata."""
        ...

    def __get__(self, instance: Any, owner: type | None = None) -> Routed[P, T]:
        """Bind to the class (or do nothing, for a staticmethod)."""
        ...


class AsyncRouted(Protocol[P, T]):
    """An async function routed across providers (what ``@routed`` returns for ``async def``)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
        """Route the call; await it for the response of the provider that succeeded."""
        ...

    def execute(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, RouteResult[T]]:
        """Route the call; await it for the response with its routing metadata."""
        ...

    def __get__(
        self: AsyncRouted[Concatenate[Any, P2], T], instance: Any, owner: type | None = None
    ) -> AsyncRouted[P2, T]:
        """Bind like a function: a method's provider parameter comes after ``self``."""
        ...


class AsyncRoutedClassmethod(Protocol[P, T]):
    """A routed async classmethod or staticmethod: binding keeps ``P``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
        """Route the call; await it for the response of the provider that succeeded."""
        ...

    def execute(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, RouteResult[T]]:
        """Route the call; await it for the response with its routing metadata."""
        ...

    def __get__(self, instance: Any, owner: type | None = None) -> AsyncRouted[P, T]:
        """Bind to the class (or do nothing, for a staticmethod)."""
        ...
