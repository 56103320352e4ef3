"""The ``@routed`` decorator: options -> route -> runner, in a wrapt function wrapper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, Unpack, overload

from ._binding import bind_first, routed_class
from ._callables import kind_of, spelled_out, visible_signature
from ._exceptions import InvalidConfigError
from ._routing.options import CommonOptions, Options, RoutingOptions, parameters
from ._routing.providers import ProviderSource
from ._routing.route import Route
from ._routing.runners import runner

if TYPE_CHECKING:
    from ._typing import (
        AsyncRouted,
        AsyncRoutedClassmethod,
        AsyncStreamRouted,
        OnClass,
        Routed,
        RoutedClassmethod,
        StreamDecorator,
    )

__all__ = ["routed"]

P = ParamSpec("P")
T = TypeVar("T")


class _Decorator:
    """The decorator returned by :func:`routed`; its options are already checked."""

    __slots__ = ("_options",)

    def __init__(self, options: Options) -> None:
        self._options = options

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: OnClass[P, Coroutine[Any, Any, T]]
    ) -> AsyncRoutedClassmethod[P, T]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: OnClass[P, T]
    ) -> RoutedClassmethod[P, T]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]
    ) -> AsyncRouted[P, T]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[Concatenate[Any, P], AsyncIterator[T]]
    ) -> AsyncStreamRouted[P, T]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], T]) -> Routed[P, T]: ...

    def __call__(self, fn: Any) -> Any:
        kind = "function"
        target = fn
        if isinstance(fn, classmethod):
            kind, target = "classmethod", fn.__func__
        elif isinstance(fn, staticmethod):
            kind, target = "staticmethod", fn.__func__
        if not callable(target):
            raise InvalidConfigError(f"@routed(...) decorates a function, got {fn!r}")
        is_async, generator = kind_of(target)
        name = getattr(target, "__qualname__", type(target).__name__)
        route = Route(self._options, is_async=is_async, name=name, generator=generator)
        signature, method = visible_signature(target, kind)
        run = runner(route)

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            return run(wrapped, args, kwargs, False)

        def executor(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if method and instance is None:  # fn.execute(instance, ...), unbound
                wrapped, args = bind_first(wrapped, args)
            return run(wrapped, args, kwargs, True)

        return routed_class(is_async, fn, run, method)(fn, wrapper, executor, route, signature)


@overload
def routed(  # type: ignore[overload-overlap]
    *, providers: ProviderSource, stream: Literal[True], **options: Unpack[CommonOptions]
) -> StreamDecorator: ...


@overload
def routed(
    *, providers: ProviderSource, stream: bool = False, **options: Unpack[CommonOptions]
) -> _Decorator: ...


def routed(*, providers: ProviderSource, **options: Unpack[RoutingOptions]) -> Any:
    """Route calls of the decorated function across ``providers``.

    The decorated function takes the provider as its first parameter (after ``self`` or
    ``cls``); the routed callable takes the remaining ones. Works on functions, methods,
    classmethods, staticmethods (put ``@routed`` above ``@classmethod``/``@staticmethod``),
    ``async def`` functions and generator functions (sync or async: streaming routes).
    ``fn.execute(...)`` returns a :class:`RouteResult` (of a stream: once its first item came).

    Args:
        providers: a sequence (copied now) or a zero-argument callable returning one (read at
            every call). Provider names come from ``provider.name`` or the str itself.
        strategy: a registered strategy name (a fresh instance for this function) or a
            strategy object (shared state when shared). Default ``"fallback"``.
        cooldown: a tracker; omitted: the global one read at call time; None: no tracking.
        exempt: names whose failures are never recorded; omitted: the global set, read at
            call time.
        fallback_on: which exceptions fall over to the next provider: a type, a tuple of
            types or a predicate. Others propagate at once, unrecorded. Default ``Exception``.
        cooldown_on: which of the failures that fall over count toward a cooldown (same
            forms); e.g. ``lambda e: not isinstance(e, TimeoutError)``. Default: all of them.
        timeout: seconds for the whole call across attempts. Async: enforced; sync: no new
            attempt starts past it. Raises ``RoutingTimeoutError``.
        attempt_timeout: seconds per attempt (async only): a timed-out attempt is a failure
            that falls over, whatever ``fallback_on`` says (``cooldown_on`` still decides
            whether it counts).
        max_attempts: the most providers called per call, the terminus included: the last
            slot is always the terminus's.
        listeners: event listeners of this function (beside the global ones); see
            ``resilient_routing.events``.
        logger: default ``logging.getLogger("resilient_routing")`` (or ``configure(logger=)``).
        stream: route a function that returns a stream (an SDK stream, any iterable; for
            ``async def``, awaited first, an async iterable) as a streaming route, like a
            generator function: calling returns an iterator at once, routing starts at its
            first item, and from that item on the stream is that provider's.
        first_item_timeout: seconds an async streaming attempt may wait for its first item;
            past it the provider's stream is closed and the attempt falls over like a failure.
        idle_timeout: seconds an async stream may go without an item after its first; past
            it the stream fails with ``TimeoutError``, recorded against its provider.

    Raises:
        InvalidConfigError: an unknown strategy or an invalid option (raised here, at
            decoration time, not at the first call).
    """
    # Checked now so a typo fails at import time, not at the first call in production; what
    # depends on the function (sync or async) is checked when it is decorated.
    return _Decorator(Options.of(providers, options, "routed"))


spelled_out(routed, parameters())
