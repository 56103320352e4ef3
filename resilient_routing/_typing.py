"""The types ``@routed`` returns, for type checkers and annotations.

Loaded on first use (``resilient_routing.Routed`` and the others): making Protocol classes
costs import time that a program which never names them should not pay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine, Generator, Iterable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeAlias, TypeVar, overload

from ._result import RouteResult

__all__ = [
    "AsyncRouted",
    "AsyncRoutedClassmethod",
    "AsyncRoutedOnClass",
    "AsyncStreamRouted",
    "Routed",
    "RoutedClassmethod",
    "RoutedOnClass",
    "StreamDecorator",
]

P = ParamSpec("P")
P2 = ParamSpec("P2")
T = TypeVar("T")
R = TypeVar("R")

#: A classmethod or staticmethod under ``@routed``, its provider the first parameter left.
OnClass: TypeAlias = (
    "classmethod[Any, Concatenate[Any, P], R] | staticmethod[Concatenate[Any, P], R]"
)


class Routed(Protocol[P, T]):
    """A sync function routed across providers (what ``@routed`` returns)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        """Route the call; return the response of the provider that succeeded."""
        ...

    def execute(self, *args: P.args, **kwargs: P.kwargs) -> RouteResult[T]:
        """Route the call; return the response with its routing metadata."""
        ...

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> RoutedOnClass[P, T]: ...

    @overload
    def __get__(
        self: Routed[Concatenate[Any, P2], T], instance: object, owner: type | None = None
    ) -> Routed[P2, T]: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Bind like a function: a method's provider parameter comes after ``self``."""
        ...


class RoutedOnClass(Protocol[P, T]):
    """A routed function read on its class: a staticmethod (as declared) or a classmethod.

    Type checkers read ``@routed`` above ``@staticmethod`` or ``@classmethod`` as a plain
    function, so both calls are accepted: without the first parameter left (a classmethod's
    provider, after ``cls``), or as declared (a staticmethod's, the provider already gone).
    """

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T: ...

    @overload
    def __call__(
        self: RoutedOnClass[Concatenate[Any, P2], T], *args: P2.args, **kwargs: P2.kwargs
    ) -> T: ...

    def __call__(self, *args: Any, **kwargs: Any) -> T:
        """Route the call; return the response of the provider that succeeded."""
        ...

    @overload
    def execute(self, *args: P.args, **kwargs: P.kwargs) -> RouteResult[T]: ...

    @overload
    def execute(
        self: RoutedOnClass[Concatenate[Any, P2], T], *args: P2.args, **kwargs: P2.kwargs
    ) -> RouteResult[T]: ...

    def execute(self, *args: Any, **kwargs: Any) -> RouteResult[T]:
        """Route the call; return the response with its routing metadata."""
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

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> AsyncRoutedOnClass[P, T]: ...

    @overload
    def __get__(
        self: AsyncRouted[Concatenate[Any, P2], T], instance: object, owner: type | None = None
    ) -> AsyncRouted[P2, T]: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Bind like a function: a method's provider parameter comes after ``self``."""
        ...


class AsyncRoutedOnClass(Protocol[P, T]):
    """:class:`RoutedOnClass` for ``async def``: calls return coroutines."""

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(
        self: AsyncRoutedOnClass[Concatenate[Any, P2], T], *args: P2.args, **kwargs: P2.kwargs
    ) -> Coroutine[Any, Any, T]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, T]:
        """Route the call; await it for the response of the provider that succeeded."""
        ...

    @overload
    def execute(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, RouteResult[T]]: ...

    @overload
    def execute(
        self: AsyncRoutedOnClass[Concatenate[Any, P2], T], *args: P2.args, **kwargs: P2.kwargs
    ) -> Coroutine[Any, Any, RouteResult[T]]: ...

    def execute(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, RouteResult[T]]:
        """Route the call; await it for the response with its routing metadata."""
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


class AsyncStreamRouted(Protocol[P, T]):
    """An async streaming route (an async generator function, or ``stream=True``).

    Calling it returns an async generator of the items at once (routing starts at the first
    item asked for); ``await .execute(...)`` returns the RouteResult once the first item
    arrived, whose ``response`` is that stream.
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[T, None]:
        """Return the routed stream of items."""
        ...

    def execute(
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, RouteResult[AsyncGenerator[T, None]]]:
        """Route to a first item; await it for the stream with its routing metadata."""
        ...

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> AsyncStreamRouted[P, T]: ...

    @overload
    def __get__(
        self: AsyncStreamRouted[Concatenate[Any, P2], T],
        instance: object,
        owner: type | None = None,
    ) -> AsyncStreamRouted[P2, T]: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Bind like a function: a method's provider parameter comes after ``self``."""
        ...


class StreamDecorator(Protocol):
    """What ``routed(..., stream=True)`` returns, for type checkers.

    It routes a function returning a stream (an SDK stream, any iterable or async iterable),
    or a generator function, as a stream.
    """

    @overload
    def __call__(
        self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, AsyncIterable[T]]]
    ) -> AsyncStreamRouted[P, T]: ...

    @overload
    def __call__(
        self, fn: Callable[Concatenate[Any, P], AsyncIterable[T]]
    ) -> AsyncStreamRouted[P, T]: ...

    @overload
    def __call__(
        self, fn: Callable[Concatenate[Any, P], Iterable[T]]
    ) -> Routed[P, Generator[T, None, None]]: ...

    def __call__(self, fn: Any) -> Any:
        """Route ``fn`` as a stream."""
        ...
