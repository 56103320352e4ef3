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
from typing import Any, Final

from resilient_routing import _config
from resilient_routing._exceptions import InvalidConfigError

from . import report
from .decision import RECORD
from .route import Route
from .steps import Args, AsyncFn, Fn, Kwargs, ask_tracker, ask_tracker_async, cancelling
from .stream_decision import StreamDecision

__all__ = ["async_runner", "release", "sync_runner"]

#: The first item of a stream that ended without one (a stream may be empty).
_EMPTY: Final = object()
#: What waiting for an item gives when ``idle_timeout`` ran out first.
_STALLED: Final = object()
#: Text is iterable, but a function returning it is not a stream.
_TEXT = (str, bytes, bytearray)


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
                closing = close()
                if inspect.iscoroutine(closing):  # an async stream, refused: none to await
                    closing.close()


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

    def run(fn: Fn, args: Args, kwargs: Kwargs, want_result: bool) -> Any:
        ref: Ref = []
        stream = _sync_stream(route, drive, fn, args, kwargs, ref, want_result)
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
        made = it = call(provider, *args, **kwargs)
        try:
            it = _iterator(made, name)
            first = next(it, _EMPTY)
        except BaseException:
            _close(it, made)  # refused, failed or interrupted: what was opened is closed
            raise
        return made, it, first

    try:
        made, it, first = drive(d, tracker, open_stream, args, kwargs)
    except BaseException:
        d.released()
        won = _won(d)
        if won is not None:
            _close(won[1], won[0])
        del d  # see the end
        raise
    d.deliver(ref[0])
    # What the consumer throws in at a yield (throw(), close()) is not the provider's doing.
    # (A flag: holding the exception would make a cycle through its traceback and this frame.)
    thrown = False
    try:
        if announce:
            try:
                yield report.result(d)  # not through a local: it holds this very stream
            except BaseException:
                thrown = True
                raise
        if first is not _EMPTY:
            d.items = 1
            try:
                yield first
            except BaseException:
                thrown = True
                raise
            if d.listeners:
                for item in it:
                    d.items += 1
                    try:
                        yield item
                    except BaseException:
                        thrown = True
                        raise
            else:
                for item in it:
                    try:
                        yield item
                    except BaseException:
                        thrown = True
                        raise
    except GeneratorExit:
        _finishing(d, _close, it, made)
        _finishing(d, _cleared, d, tracker)
        d.ended(closed=True)
        raise
    except BaseException as exc:
        _finishing(d, _close, it, made)  # interrupted while closing: the call ends so
        if thrown or not isinstance(exc, Exception):
            d.finish(exc)  # the consumer's, or an interruption: nothing recorded
            raise
        step = d.broke(exc)
        if step is RECORD:
            _finishing(d, ask_tracker, d, step, tracker)
        raise
    else:
        _finishing(d, _close, it, made)
        _finishing(d, _cleared, d, tracker)
        d.ended()
    finally:
        d.released()
        # A failure's traceback keeps this frame, with its locals, past the stream's end
        # (Python links the frame of the driver that caught it to this one): the decision,
        # which holds the failures, would make a cycle of it.
        del d


def _cleared(d: StreamDecision, tracker: Any) -> None:
    """The stream ended well: its provider's success is recorded (where it must be)."""
    if d.clears:
        tracker.record_success(d.names[d.winner])


async def _cleared_async(d: StreamDecision, tracker: Any) -> None:
    if d.clears:
        await tracker.record_success(d.names[d.winner])


def _finishing(d: StreamDecision, step: Callable[..., Any], *args: Any) -> Any:
    """Run a tracker ``step`` at a stream's end; if it raises, the call ends with that."""
    try:
        return step(*args)
    except BaseException as exc:
        d.finish(exc)
        raise


async def _finishing_async(d: StreamDecision, step: Callable[..., Any], *args: Any) -> Any:
    try:
        return await step(*args)
    except BaseException as exc:
        d.finish(exc)
        raise


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
        it = made
        try:
            it = _async_iterator(made, name)
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first = _EMPTY
        except BaseException:
            # Refused, cancelled (first_item_timeout, a hedge lost, the caller) or failed.
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
        del d  # as in the sync stream
        raise
    d.deliver(ref[0])
    idle = route.options.idle_timeout
    stalled: TimeoutError | None = None
    thrown = False  # as in the sync stream
    try:
        if announce:
            try:
                yield report.result(d)  # as in the sync stream
            except BaseException:
                thrown = True
                raise
        if first is not _EMPTY:
            d.items = 1
            try:
                yield first
            except BaseException:
                thrown = True
                raise
            if idle is None and not d.listeners:
                async for item in it:
                    try:
                        yield item
                    except BaseException:
                        thrown = True
                        raise
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
                    try:
                        yield item
                    except BaseException:
                        thrown = True
                        raise
    except GeneratorExit:
        await _finishing_async(d, _aclose, it, made)
        if cancelling():  # the consumer's task, cancelled in its loop body: nothing recorded
            d.finish(asyncio.CancelledError())
        else:
            await _finishing_async(d, _cleared_async, d, tracker)
            d.ended(closed=True)
        raise
    except BaseException as exc:
        await _finishing_async(d, _aclose, it, made)  # cancelled while closing: as in sync
        if isinstance(exc, Exception) and cancelling(exc):  # a client's stand-in for it
            d.finish(asyncio.CancelledError())
            raise asyncio.CancelledError() from exc
        if thrown or not isinstance(exc, Exception):
            d.finish(exc)  # the consumer's (athrow), or a cancellation: nothing recorded
            raise
        step = d.broke(exc, exc is stalled)
        if step is RECORD:
            await _finishing_async(d, ask_tracker_async, d, step, tracker)
        raise
    else:
        await _finishing_async(d, _aclose, it, made)
        await _finishing_async(d, _cleared_async, d, tracker)
        d.ended()
    finally:
        d.released()
        del d, stalled  # as in the sync stream


async def _next_item(it: AsyncIterator[Any], idle: float | None) -> Any:
    """Return the stream's next item, or ``_STALLED`` if none came within ``idle`` seconds."""
    if idle is None:
        return await it.__anext__()
    scope = asyncio.timeout(idle)
    try:
        async with scope:
            return await it.__anext__()
    except TimeoutError:
        if not scope.expired():
            raise
        return _STALLED
    finally:
        del scope  # it holds the consumer's task; a failure's traceback holds this frame
