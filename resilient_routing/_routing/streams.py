"""The streaming drivers: routing until a provider's first item, then its stream.

A streaming route's attempt opens the provider's stream and waits for its first item; the
ordinary drivers perform the decision's steps over such attempts (every rule of a call applies
before the first item), so a provider that fails before its first item falls over like any
other. From the first item on, the stream is the winner's: it is passed through to the
consumer, and a failure ends it (recorded, noted, re-raised), never restarts it elsewhere.

A routed stream is a generator (an async generator): closed early, or dropped by its consumer,
it closes the provider's stream; it holds itself only weakly (its call's result names it),
so dropping it is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import MethodType
from typing import Any, Final

from resilient_routing import _config
from resilient_routing._exceptions import InvalidConfigError

from . import report
from .decision import CLEAR, RECORD, Decision
from .failures import judge
from .route import Context, Route
from .steps import Args, AsyncFn, Fn, Kwargs, ask_tracker, ask_tracker_async, cancelling

__all__ = ["StreamDecision", "async_runner", "release", "sync_runner"]

#: The first item of a stream that ended without one (a stream may be empty).
_EMPTY: Final = object()
#: What waiting for an item gives when ``idle_timeout`` ran out first.
_STALLED: Final = object()
#: Text is iterable, but a function returning it is not a stream.
_TEXT = (str, bytes, bytearray)


class StreamDecision(Decision):
    """The decision of a streaming call: routing ends at the first item, the call at the end.

    Attributes:
        items: the items handed to the consumer (counted while someone listens).
    """

    __slots__ = ("clears", "closed", "delivered", "first_at", "held", "items", "over")

    def __init__(self, route: Route, context: Context) -> None:
        super().__init__(route, context, False)
        self.delivered = self.over = self.closed = self.clears = False
        self.items = 0
        #: The winner's attempt, which ends with its stream: (index, time to first item).
        self.held: tuple[int, float] | None = None

    def _answered(self, i: int, latency: float) -> None:
        # The provider is busy until its stream ends (least_busy counts it in flight until
        # then); what the strategy learns of its speed is the time to the first item.
        self.held = (i, latency)

    def released(self) -> None:
        """The call is over, however it ended: the winner's attempt ends with it."""
        held, self.held = self.held, None
        if held is not None:
            self._ended(*held, True)

    def succeeded(self, i: int, response: Any, latency: float) -> int:
        """The first item arrived (see :meth:`Decision.succeeded`).

        Its success is recorded when the stream ends well (:attr:`clears`), not now: a
        provider that cuts every stream after a few items must reach its failure threshold.
        """
        step = super().succeeded(i, response, latency)
        if step is CLEAR:
            self.clears = True
            return self.returns()
        return step

    def deliver(self, stream: weakref.ref[Any]) -> None:
        """The winner's first item arrived: ``stream`` (the routed stream) is its from now on."""
        self.delivered = True
        # The opened stream goes to the driver only: last_route() keeps this decision, and
        # must not keep a stream its consumer dropped.
        self.response = stream
        self.value = None
        if self.listeners:
            self.first_at = self.route.clock()
            report.first_item(self)

    def broke(self, raised: Exception, stalled: bool = False) -> int:
        """The winner's stream raised ``raised`` after its first item: ``RECORD`` or ``RAISE``.

        Recorded as the winner's failure by the rules of any failure (``fallback_on``,
        ``cooldown_on``, exempt names; ``stalled``: ``idle_timeout`` ended it, which counts
        whatever ``fallback_on`` says); re-raised with a note either way.
        """
        i = self.winner
        fallback_on = self.route.options.fallback_on
        exc, falls_over = (raised, True) if stalled else judge(fallback_on, raised)
        if falls_over and self.tracked and self.counts(i, exc):
            self.index, self.judged, self.raised = i, exc, raised
            return RECORD
        if self.loud:
            report.stream_broke(self, exc, "counted" if falls_over else "propagated")
        self._note(i, raised, "raised mid-stream by provider")
        return self._raise(raised)

    def recorded(self, started: bool, remaining: float) -> int:
        """The failure of ``RECORD`` was recorded; ``started``: it started a cooldown."""
        if not self.delivered:
            return super().recorded(started, remaining)
        i = self.winner
        if self.loud:
            report.stream_broke(self, self.judged, "counted")
            if started:
                report.cooldown_started(self, i, remaining)
        self._note(i, self.raised, "raised mid-stream by provider")
        return self._raise(self.raised)

    def ended(self, closed: bool = False) -> None:
        """The stream ran out (``closed``: its consumer closed it first): the call ends."""
        self.over, self.closed = True, closed
        self.finish(None)

    def finish(self, exc: BaseException | None) -> None:
        """Tell the listeners the call ended, once: a success ends it only with its stream."""
        if self.listeners and not self.finished:
            if exc is None and not self.over:
                return  # the first item: the call goes on with its stream
            if self.delivered:
                report.stream_ended(self, exc, self.closed, self.items, self.first_at)
        super().finish(exc)


def _won(d: StreamDecision) -> tuple[Any, Any, Any] | None:
    """The stream a winner opened, when routing failed after its first item (None: none won).

    A slow first item is recorded as a failure before the stream is delivered: if recording
    raises (the tracker failed, the task was cancelled), nobody else would close it.
    """
    opened: tuple[Any, Any, Any] | None = getattr(d, "response", None)
    return opened


def _refused(made: object, name: str, expected: str) -> InvalidConfigError:
    return InvalidConfigError(
        f"streaming route {name}: the provider call returned {type(made).__name__}, "
        f"expected {expected}"
    )


def _iterator(made: object, name: str) -> Iterator[Any]:
    if not isinstance(made, _TEXT):
        try:
            return iter(made)  # type: ignore[call-overload, no-any-return]
        except TypeError:
            pass
    if hasattr(made, "__aiter__"):
        raise _refused(made, name, "an iterable (an async stream needs an async def function)")
    raise _refused(made, name, "an iterable (a generator, an SDK stream)")


def _async_iterator(made: object, name: str) -> AsyncIterator[Any]:
    aiter_ = getattr(made, "__aiter__", None)
    if aiter_ is None:
        raise _refused(made, name, "an async iterable (an async generator, an SDK async stream)")
    iterator: AsyncIterator[Any] = aiter_()
    return iterator


def _close(it: object, made: object) -> None:
    for stream in (it,) if it is made else (it, made):
        close = getattr(stream, "close", None)
        if callable(close):
            # A stream that fails to close has nothing more to give: the routing goes on.
            with contextlib.suppress(Exception):
                close()


async def _aclose(it: object, made: object) -> None:
    for stream in (it,) if it is made else (it, made):
        close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # as in _close
                closing = close()
                if inspect.isawaitable(closing):
                    await closing


async def release(opened: tuple[Any, Any, Any]) -> None:
    """Close the stream a losing hedged attempt opened."""
    made, it, _ = opened
    await _aclose(it, made)


def sync_runner(route: Route, drive: Callable[..., Any]) -> Callable[..., Any]:
    """Return the runner of a sync streaming route, whose routing ``drive`` performs.

    It returns a routed stream, or (``want_result``) the RouteResult of one whose first item
    arrived.
    """

    def run(fn: Fn, args: Args, kwargs: Kwargs, want_result: bool, instance: object = None) -> Any:
        call = fn if instance is None else MethodType(fn, instance)
        ref: Ref = []
        stream = _sync_stream(route, drive, call, args, kwargs, ref, want_result)
        ref.append(weakref.ref(stream))
        return next(stream) if want_result else stream

    return run


def _decide(route: Route) -> tuple[StreamDecision, Any]:
    """Return the decision of a streaming call, and the tracker its driver uses.

    Called at the first item asked for: routing starts there, under the configuration then.
    """
    context = route.context_of(_config._current)
    return StreamDecision(route, context), context.tracker


#: The routed stream, held weakly (appended once it is made).
Ref = list[weakref.ref[Any]]


def _sync_stream(
    route: Route, drive: Fn, call: Fn, args: Args, kwargs: Kwargs, ref: Ref, announce: bool
) -> Iterator[Any]:
    d, tracker = _decide(route)
    name = route.name

    def open_stream(provider: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
        made = call(provider, *args, **kwargs)
        it = _iterator(made, name)
        try:
            first = next(it)
        except StopIteration:
            first = _EMPTY
        except BaseException:
            _close(it, made)
            raise
        return made, it, first

    try:
        made, it, first = drive(d, tracker, open_stream, args, kwargs)
    except BaseException:
        d.released()
        won = _won(d)
        if won is not None:
            _close(won[1], won[0])
        raise
    d.deliver(ref[0])
    try:
        if announce:
            yield report.result(d)
        if first is not _EMPTY:
            d.items = 1
            yield first
            if d.listeners:
                for item in it:
                    d.items += 1
                    yield item
            else:
                yield from it
    except GeneratorExit:
        _close(it, made)
        if d.clears:
            tracker.record_success(d.names[d.winner])
        d.ended(closed=True)
        raise
    except Exception as exc:
        _close(it, made)
        step = d.broke(exc)
        if step is RECORD:
            ask_tracker(d, step, tracker)
        raise
    except BaseException as exc:
        _close(it, made)
        d.finish(exc)
        raise
    else:
        _close(it, made)
        if d.clears:
            tracker.record_success(d.names[d.winner])
        d.ended()
    finally:
        d.released()


def async_runner(route: Route, drive: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Return the runner of an async streaming route, whose routing ``drive`` performs.

    It returns a routed async stream, or (``want_result``) the coroutine of the RouteResult of
    one whose first item arrived.
    """

    def run(fn: Fn, args: Args, kwargs: Kwargs, want_result: bool) -> Any:
        ref: Ref = []
        stream = _async_stream(route, drive, fn, args, kwargs, ref, want_result)
        ref.append(weakref.ref(stream))
        return _first(stream) if want_result else stream

    return run


async def _first(stream: AsyncIterator[Any]) -> Any:
    return await stream.__anext__()


async def _async_stream(
    route: Route, drive: AsyncFn, fn: Fn, args: Args, kwargs: Kwargs, ref: Ref, announce: bool
) -> AsyncIterator[Any]:
    d, tracker = _decide(route)
    name = route.name

    async def open_stream(provider: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
        made = fn(provider, *args, **kwargs)
        if inspect.isawaitable(made):  # stream=True on an async def: awaited, then iterated
            made = await made
        it = _async_iterator(made, name)
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            first = _EMPTY
        except BaseException:
            # Cancelled (first_item_timeout, a hedge lost, the caller) or failed: close it.
            await _aclose(it, made)
            raise
        return made, it, first

    try:
        made, it, first = await drive(d, tracker, open_stream, args, kwargs)
    except BaseException:
        d.released()
        won = _won(d)
        if won is not None:
            await _aclose(won[1], won[0])
        raise
    d.deliver(ref[0])
    idle = route.options.idle_timeout
    stalled: TimeoutError | None = None
    try:
        if announce:
            yield report.result(d)
        if first is not _EMPTY:
            d.items = 1
            yield first
            if idle is None and not d.listeners:
                async for item in it:
                    yield item
            else:
                while True:
                    try:
                        item = await _next_item(it, idle)
                    except StopAsyncIteration:
                        break
                    if item is _STALLED:
                        provider = d.names[d.winner]
                        stalled = TimeoutError(
                            f"provider {provider!r} sent no item within idle_timeout={idle:g} s"
                        )
                        raise stalled
                    d.items += 1
                    yield item
    except GeneratorExit:
        await _aclose(it, made)
        if d.clears:
            await tracker.record_success(d.names[d.winner])
        d.ended(closed=True)
        raise
    except Exception as exc:
        await _aclose(it, made)
        if cancelling():  # a client wrapper's stand-in for the cancellation
            d.finish(asyncio.CancelledError())
            raise asyncio.CancelledError() from exc
        step = d.broke(exc, exc is stalled)
        if step is RECORD:
            await ask_tracker_async(d, step, tracker)
        raise
    except BaseException as exc:
        await _aclose(it, made)
        d.finish(exc)
        raise
    else:
        await _aclose(it, made)
        if d.clears:
            await tracker.record_success(d.names[d.winner])
        d.ended()
    finally:
        d.released()


async def _next_item(it: AsyncIterator[Any], idle: float | None) -> Any:
    """Return the stream's next item, or ``_STALLED`` if none came within ``idle`` seconds."""
    if idle is None:
        return await it.__anext__()
    try:
        async with asyncio.timeout(idle) as scope:
            return await it.__anext__()
    except TimeoutError:
        if not scope.expired():
            raise
        return _STALLED
