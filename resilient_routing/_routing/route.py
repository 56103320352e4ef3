"""A route: what a routed function resolves once, at decoration time."""

from __future__ import annotations

import inspect
import logging
import operator
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, SupportsIndex, cast

from resilient_routing._exceptions import InvalidConfigError
from resilient_routing._validate import UNSET, AnyTracker
from resilient_routing.cooldown._memory import names_with_state
from resilient_routing.cooldown._protocol import telling_admit
from resilient_routing.strategies._protocol import capabilities
from resilient_routing.strategies._registry import get_strategy, registered_name

from . import report

if TYPE_CHECKING:
    from resilient_routing._config import Config

    from .options import Options

__all__ = ["UNTRACKED", "Route", "default_clock"]

#: The clock of latencies, deadlines and event times (read when a route is built, so tests
#: and the simulator can give another one).
default_clock: Callable[[], float] = time.perf_counter


class _Everything:
    """The container of every name."""

    __slots__ = ()

    def __contains__(self, name: object) -> bool:
        return True


#: A tracker in the forms the drivers use: the one the sync driver and every fast lane calls
#: (None when it is async), the one the async driver awaits (None for sync routes), and the
#: names to ask it about: those it holds state for when it tells them (any other is
#: available, and its success has nothing to clear), else every name.
Forms = tuple[Any, Any, "Container[str]"]
UNTRACKED: Forms = (None, None, frozenset())
EVERY_NAME: Container[str] = _Everything()


class AsyncAdapter:
    """Lets the async driver await an in-process (non-blocking) sync tracker."""

    __slots__ = ("tracker",)

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    async def is_available(self, name: str) -> bool:
        return bool(self.tracker.is_available(name))

    async def cooldown_remaining(self, name: str) -> float:
        return float(self.tracker.cooldown_remaining(name))

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        return bool(self.tracker.record_failure(name, exc))

    async def record_success(self, name: str) -> None:
        self.tracker.record_success(name)

    async def admit(self, name: str) -> int:
        admit = telling_admit(self.tracker)
        if admit is None:  # a tracker of the protocol alone: no half-open probes to tell
            return int(bool(self.tracker.is_available(name)))
        return int(admit(name))


class Context:
    """What a route's calls read of one global configuration, resolved once for it.

    Attributes:
        config: the configuration it was resolved from (each new one is resolved anew).
        local: the tracker called without awaiting (a sync route's, or an async route's
            in-process one), or None.
        tracker: the tracker the driver calls (sync) or awaits (async); None: untracked.
        asks: the names to ask the tracker about (see :data:`Forms`).
        exempt: the names whose failures count toward no cooldown.
        logger: the logger of the route's calls.
        levels: the logger's own record of the levels it is enabled for (see :func:`_levels`).
        listeners: the route's listeners, then the global ones.
    """

    __slots__ = ("asks", "config", "exempt", "levels", "listeners", "local", "logger", "tracker")

    def __init__(self, route: Route, config: Config | None, forms: Forms = UNTRACKED) -> None:
        options = route.options
        self.config = config
        self.local, awaited, self.asks = forms
        self.tracker = awaited if route.is_async else self.local
        exempt = options.exempt
        own = options.listeners
        self.exempt: Container[str]
        if config is None:  # nothing resolved yet: no call can match it
            self.exempt, self.logger, self.listeners = frozenset(), _logger, own
            self.levels = _levels(_logger)
            return
        self.exempt = config.exempt_providers if exempt is None else exempt
        self.logger = logger = options.logger or config.logger
        self.levels = _levels(logger)
        shared = config.listeners
        # A listener given both globally and to the function hears each event once.
        self.listeners = own + tuple(x for x in shared if not _among(x, own)) if own else shared


def _among(listener: object, listeners: tuple[object, ...]) -> bool:
    return any(listener is other for other in listeners)


_logger = logging.getLogger("resilient_routing")
_NOTHING_KNOWN: Mapping[int, bool] = MappingProxyType({})
_IS_ENABLED_FOR = logging.Logger.isEnabledFor  # logging's own, before anyone patches it


def _levels(logger: logging.Logger) -> Mapping[int, bool]:
    """Return ``logger``'s record of the levels it is enabled for, for reading without a call.

    ``isEnabledFor()`` is a Python call on every routed call (~7 % of a call that succeeds).
    A standard Logger keeps each verdict in a cache it empties whenever a level changes: a
    verdict found there (``levels.get(level)``) is the one ``isEnabledFor()`` would give, and
    only a missing one needs the call. A logger that decides otherwise is always asked: its
    record is empty. That is one whose ``isEnabledFor()`` is not logging's own (its class's
    override, a patch on it or on ``logging.Logger``), or that keeps no such cache. It is
    judged when the route resolves the configuration: a method patched later is not seen.
    """
    cache = getattr(logger, "_cache", None)
    if (
        type(logger).isEnabledFor is _IS_ENABLED_FOR
        and "isEnabledFor" not in vars(logger)
        and type(cache) is dict
    ):
        return cache
    return _NOTHING_KNOWN


def _forms(tracker: AnyTracker, is_async: bool, origin: str) -> Forms:
    """Return ``tracker`` in the forms the drivers use, or refuse it for this route."""
    if inspect.iscoroutinefunction(getattr(tracker, "is_available", None)):
        if not is_async:
            raise InvalidConfigError(
                f"{origin} {type(tracker).__name__} is an async tracker, but the routed function "
                "is sync: give it a sync CooldownTracker (InMemoryCooldownTracker, "
                "RedisCooldownTracker)"
            )
        return (None, tracker, EVERY_NAME)
    if is_async and getattr(tracker, "blocking_io", False):
        raise InvalidConfigError(
            f"{origin} {type(tracker).__name__} blocks on I/O and would stall the event loop of "
            "an async routed function: use AsyncRedisCooldownTracker (or another "
            "AsyncCooldownTracker) there"
        )
    known = names_with_state(tracker)
    asks = EVERY_NAME if known is None else known
    return (tracker, AsyncAdapter(tracker) if is_async else None, asks)


def _check_stream_options(options: Options, stream: bool, is_async: bool, hedged: bool) -> None:
    for name in ("first_item_timeout", "idle_timeout"):
        if getattr(options, name) is None:
            continue
        if not stream:
            raise InvalidConfigError(
                f"{name} is for streaming routes: a generator function, or stream=True "
                "for a function that returns a stream"
            )
        if not is_async:
            raise InvalidConfigError(
                f"{name} needs an async streaming route: a running sync generator cannot "
                "be interrupted; give your client its own timeout"
            )
    if not stream:
        return
    if hedged and not is_async:
        raise InvalidConfigError(
            "a hedged streaming route must be async: a sync stream running in another "
            "thread cannot be closed when it loses"
        )
    if options.attempt_timeout is not None:
        raise InvalidConfigError(
            "attempt_timeout bounds a call that returns; a streaming route's attempt ends at "
            "its first item: use first_item_timeout (and idle_timeout between items)"
        )


class Route:
    """Everything about a routed function that is resolved once, at decoration time.

    Args:
        options: the checked options.
        is_async: whether the routed function is a coroutine function.
        name: the routed function's qualified name (for events).
        clock: the clock of latencies and deadlines (default :data:`default_clock`).
        generator: the routed function is a generator (or async generator) function: a
            streaming route, whatever ``stream=`` says.

    Raises:
        InvalidConfigError: an option does not fit this function (an async tracker for a
            sync function, ``attempt_timeout`` on a sync one) or the strategy is invalid.
    """

    __slots__ = (
        "attempt_limit",
        "attempt_limit_name",
        "caps",
        "clock",
        "context",
        "cooldown",
        "failure_line",
        "forms",
        "is_async",
        "lane",
        "loudest",
        "name",
        "options",
        "plain",
        "providers",
        "rest",
        "single",
        "static_names",
        "strategy",
        "strategy_name",
        "stream",
    )

    def __init__(
        self,
        options: Options,
        *,
        is_async: bool,
        name: str = "",
        clock: Callable[[], float] | None = None,
        generator: bool = False,
    ) -> None:
        chosen = options.strategy
        self.strategy = get_strategy(chosen) if isinstance(chosen, str) else chosen
        #: The name events and telemetry show: the registered name, else the class's.
        self.strategy_name = chosen if isinstance(chosen, str) else registered_name(chosen)
        self.caps = caps = capabilities(self.strategy)
        if caps.check_providers is not None and isinstance(options.providers, tuple):
            caps.check_providers(options.providers[1])
        self.options = options
        self.is_async = is_async
        self.name = name
        self.clock = clock or default_clock
        self.providers = options.providers
        self.static_names: tuple[str, ...] | None = (
            options.providers[1] if isinstance(options.providers, tuple) else None
        )
        cooldown = options.cooldown if caps.uses_cooldown else None
        self.cooldown = cooldown
        self.forms: tuple[object, Forms] = (None, UNTRACKED)
        if cooldown is not UNSET and cooldown is not None:
            self.forms = (cooldown, _forms(cooldown, is_async, "cooldown="))
        if options.attempt_timeout is not None and not is_async:
            raise InvalidConfigError(
                "attempt_timeout needs an async routed function: a running sync call cannot be "
                "interrupted; give your client its own timeout, and timeout= for the whole call"
            )
        #: A streaming route: an attempt ends at the provider's first item.
        self.stream = stream = options.stream or generator
        _check_stream_options(options, stream, is_async, caps.hedge_delay is not None)
        #: What bounds one attempt, and its option's name (for messages).
        self.attempt_limit = options.first_item_timeout if stream else options.attempt_timeout
        self.attempt_limit_name = "first_item_timeout" if stream else "attempt_timeout"
        #: The level of the loudest record a call may log: below it, a call logs nothing.
        self.loudest = max(caps.failure_level, logging.WARNING)
        self.failure_line = report.failure_line(caps)
        self.single = caps.single_attempt
        #: Nothing acts around an attempt: no deadline, no cap, no hooks, no hedging (the core
        #: skips those rules at once).
        self.plain = (
            options.timeout is None
            and self.attempt_limit is None
            and options.max_attempts is None
            and caps.on_attempt_start is None
            and caps.on_attempt_end is None
            and caps.hedge_delay is None
        )
        # The fast lane serves calls whose first choice answers; it needs a provider list known
        # now (an empty one raises at call time) and a plain route.
        fast = (
            bool(self.static_names)
            and self.plain
            and not options.listeners
            and not stream
            and options.slow_call is None  # a slow answer is recorded as a failure
        )
        #: The providers and their names a fast lane serves (None: the route has no lane).
        self.lane: tuple[tuple[Any, ...], tuple[str, ...]] | None = (
            options.providers if fast and isinstance(options.providers, tuple) else None
        )
        #: The plan after the first choice, for a fast route in list order.
        self.rest: range | None = None
        if fast and caps.in_list_order:
            self.rest = range(1, 1 if self.single else len(self.static_names or ()))
        #: What the last call read of the global configuration (runners check it is current).
        self.context = Context(self, None)

    def resolve(self, config: Config) -> Context:
        """Return (and keep) the context of calls under ``config``.

        Raises:
            InvalidConfigError: the global tracker does not fit this route.
        """
        context = Context(self, config, self.trackers(config))
        self.context = context
        return context

    def context_of(self, config: Config) -> Context:
        """Return the context of a call under ``config`` (the kept one when still current)."""
        context = self.context
        return context if context.config is config else self.resolve(config)

    def trackers(self, config: Config) -> Forms:
        """Return the tracker of a call in the forms the drivers use (None: untracked)."""
        tracker = self.cooldown
        if tracker is UNSET:
            tracker = config.cooldown
            if tracker is None:
                return UNTRACKED
        elif tracker is None:
            return UNTRACKED
        cached = self.forms
        if cached[0] is tracker:
            return cached[1]
        # The global tracker may change: each new one is checked once for this route.
        forms = _forms(tracker, self.is_async, "the global cooldown tracker")
        self.forms = (tracker, forms)
        return forms

    def is_terminus(self, i: int, n: int) -> bool:
        """Whether provider ``i`` of ``n`` is the terminus (multi-attempt strategies only)."""
        return i == n - 1 and not self.single

    def plan(self, providers: Sequence[Any]) -> Iterator[int]:
        """Return the indices of ``providers`` to consider, each once, the terminus last.

        Lazily: the happy path must not pay for providers it never reaches.

        Args:
            providers: the call's providers.

        Raises:
            InvalidConfigError: the strategy chose no provider, or an index that is not one.
        """
        n = len(providers)
        single = self.single
        if self.caps.in_list_order:
            return iter(range(1 if single else n))
        order = self.strategy.order(providers)
        if type(order) is range and order == range(n) and not single:
            return iter(order)  # every index once, in order, ending on the terminus
        try:
            indices = iter(order)
        except TypeError:
            raise InvalidConfigError(
                f"strategy {self.strategy!r}.order() returned {order!r}: expected an iterable "
                "of provider indices"
            ) from None
        if single:
            try:
                first = next(indices)
            except StopIteration:
                raise InvalidConfigError(f"strategy {self.strategy!r} chose no provider") from None
            except Exception as exc:
                raise self._broken(exc) from exc
            return iter((self._checked(first, n),))
        return self._deduplicated(indices, n)

    def _broken(self, exc: Exception) -> InvalidConfigError:
        """What a strategy's order raised while it was read: its bug, said as such."""
        return InvalidConfigError(
            f"strategy {self.strategy!r}.order() failed while it was read: "
            f"{type(exc).__name__}: {exc}"
        )

    def _checked(self, i: object, n: int) -> int:
        if type(i) is not int:
            if isinstance(i, bool) or not hasattr(type(i), "__index__"):
                raise InvalidConfigError(
                    f"strategy {self.strategy!r} chose index {i!r} of type "
                    f"{type(i).__name__}: expected an int"
                )
            i = operator.index(cast(SupportsIndex, i))  # a numpy integer, say
        if not 0 <= i < n:
            raise InvalidConfigError(
                f"strategy {self.strategy!r} chose index {i!r}, outside the {n} providers of "
                "this call"
            )
        return i

    def _deduplicated(self, order: Iterator[object], n: int) -> Iterator[int]:
        terminus = n - 1
        seen: set[int] = set()
        while True:
            try:
                index = next(order)
            except StopIteration:
                break
            except Exception as exc:
                raise self._broken(exc) from exc
            i = self._checked(index, n)
            if i != terminus and i not in seen:
                seen.add(i)
                yield i
        yield terminus
