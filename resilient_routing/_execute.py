"""The functional form: ``execute()`` and ``execute_async()``, over the same core as ``@routed``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, cast

from ._callables import kind_of, spelled_out
from ._exceptions import InvalidConfigError
from ._routing.options import Options, RoutingOptions, parameters
from ._routing.route import Route
from ._routing.runners import awaiting, runner

if TYPE_CHECKING:
    from ._result import RouteResult

__all__ = ["execute", "execute_async"]

T = TypeVar("T")


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", type(fn).__name__)


def execute(
    providers: object, fn: Callable[[Any], T], **options: Unpack[RoutingOptions]
) -> RouteResult[T]:
    """Call ``fn(provider)`` across ``providers``; return a RouteResult.

    The functional form of :func:`~resilient_routing.routed`, with the same options and rules.
    A strategy named by string is a fresh instance per call: pass one object
    (``RoundRobin()``) to rotate across calls. A generator function ``fn``, or ``stream=True``,
    routes a stream: the result comes once its first item arrived, ``response`` the stream.

    Raises:
        NoProvidersError: the provider list is empty.
        InvalidConfigError: an option is invalid.
        AllProvidersFailedError: every provider attempted by a multi-attempt strategy failed.
        RoutingTimeoutError: ``timeout`` ran out before a provider succeeded.
    """
    is_async, generator = kind_of(fn)
    if is_async:
        raise InvalidConfigError(
            f"execute() calls sync functions; {fn!r} is an async function: "
            "await execute_async() instead"
        )
    route = Route(
        Options.of(providers, options, "execute"),
        is_async=False,
        name=_name(fn),
        generator=generator,
    )
    # No local: a failure's traceback keeps this frame (see sync.runner).
    return cast("RouteResult[T]", runner(route)(fn, (), {}, True))


async def execute_async(
    providers: object, fn: Callable[[Any], Awaitable[T]], **options: Unpack[RoutingOptions]
) -> RouteResult[T]:
    """Await ``fn(provider)`` across ``providers``; return a RouteResult.

    The async functional form of :func:`~resilient_routing.routed` (see :func:`execute`);
    ``fn`` may be a coroutine function or any function returning an awaitable, or for a
    stream an async generator function (or ``stream=True``: an async iterable, awaited first).
    """
    route = Route(
        Options.of(providers, options, "execute_async"),
        is_async=True,
        name=_name(fn),
        generator=kind_of(fn)[1],
    )
    # A stream's attempts await what needs awaiting themselves.
    result: RouteResult[T] = await runner(route)(fn if route.stream else awaiting(fn), (), {}, True)
    return result


spelled_out(execute, parameters())
spelled_out(execute_async, parameters())
