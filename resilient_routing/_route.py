"""What a routed function resolves once, at decoration time: strategy, options, trackers."""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING, Any

from . import _config
from ._config import UNSET, AnyTracker, Unset
from ._exceptions import InvalidConfigError
from ._routing.providers import snapshot_providers
from .cooldown._protocol import CooldownTracker
from .strategies._basic import Strategy
from .strategies._registry import get_strategy

if TYPE_CHECKING:
    from .events import Listener

__all__ = ["UNTRACKED", "AsyncAdapter", "ExceptionFilter", "Route", "TrackerForms", "default_clock"]

#: The clock of latencies, deadlines and event times (read when a route is built, so tests
#: and the simulator can give another one).
default_clock: Callable[[], float] = time.perf_counter

#: What ``fallback_on=`` and ``cooldown_on=`` accept.
ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[Exception], bool]
)


def _predicate(option: str, value: object) -> Callable[[Exception], bool]:
    if isinstance(value, type) and issubclass(value, BaseException):
        cls = value
        return lambda exc: isinstance(exc, cls)
    if isinstance(value, tuple):
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
            raise InvalidConfigError(
                f"{option} tuple must hold exception types only, got {value!r}"
            )
        types = value
        return lambda exc: isinstance(exc, types)
    if callable(value) and not isinstance(value, type):
        return value
    raise InvalidConfigError(
        f"{option} must be an exception type, a tuple of them or a predicate "
        f"exc -> bool, got {value!r}"
    )


def _seconds(option: str, value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidConfigError(f"{option} must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


class AsyncAdapter:
    """Lets the async runner await an in-process (non-blocking) sync tracker."""

    __slots__ = ("tracker",)

    def __init__(self, tracker: CooldownTracker) -> None:
        self.tracker = tracker

    async def is_available(self, name: str) -> bool:
        return self.tracker.is_available(name)

    async def cooldown_remaining(self, name: str) -> float:
        return self.tracker.cooldown_remaining(name)

    async def record_failure(self, name: str, exc: BaseException) -> bool:
        return self.tracker.record_failure(name, exc)

    async def record_success(self, name: str) -> None:
        self.tracker.record_success(name)


def _tracker_for(tracker: AnyTracker, is_async: bool, origin: str) -> Any:
    """Return ``tracker`` in the form the runner awaits or calls, or refuse it."""
    if inspect.iscoroutinefunction(getattr(tracker, "is_available", None)):
        if not is_async:
            raise InvalidConfigError(
                f"{origin} {type(tracker).__name__} is an async tracker, but the routed function "
                "is sync: give it a sync CooldownTracker (InMemoryCooldownTracker, "
                "RedisCooldownTracker)"
            )
        return tracker
    if not is_async:
        return tracker
    if getattr(tracker, "blocking_io", False):
        raise InvalidConfigError(
            f"{origin} {type(tracker).__name__} blocks on I/O and would stall the event loop of "
            "an async routed function: use AsyncRedisCooldownTracker (or another "
            "AsyncCooldownTracker) there"
        )
    return AsyncAdapter(tracker)  # type: ignore[arg-type]


#: A tracker in the forms the runners use: the object given, the form the runner calls or
#: awaits, the in-process sync form when there is one (an async route may call it without
#: awaiting), and that one's known names (``_known_names()``) when it tells them: a container
#: of the names it holds state for (any other is available; its success needs no recording).
TrackerForms = tuple[object, Any, Any, "Container[str] | None"]

UNTRACKED: TrackerForms = (None, None, None, None)


class Route:
    """Everything about a routed function that is resolved once, at decoration time."""

    __slots__ = (
        "_cached",
        "attempt_timeout",
        "clock",
        "cooldown",
        "cooldown_on",
        "exempt",
        "failure_level",
        "failure_message",
        "fallback_on",
        "fast",
        "hedge_delay",
        "in_list_order",
        "is_async",
        "listeners",
        "logger",
        "max_attempts",
        "max_hedges",
        "name",
        "on_attempt_end",
        "on_attempt_start",
        "providers",
        "quiet_level",
        "runner",
        "single_attempt",
        "strategy",
        "timeout",
        "uses_cooldown",
    )

    def __init__(
        self,
        *,
        providers: object,
        strategy: str | Strategy,
        cooldown: AnyTracker | Unset | None,
        exempt: Iterable[str] | None,
        fallback_on: ExceptionFilter,
        logger: logging.Logger | None,
        is_async: bool,
        cooldown_on: ExceptionFilter | None = None,
        timeout: float | None = None,
        attempt_timeout: float | None = None,
        max_attempts: int | None = None,
        listeners: Iterable[Listener] | None = None,
        name: str = "",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(strategy, str):
            strategy = get_strategy(strategy)
        elif isinstance(strategy, type):
            raise InvalidConfigError(
                f"strategy must be a strategy instance such as {strategy.__name__}(), "
                f"got the class {strategy!r}"
            )
        elif not callable(getattr(strategy, "order", None)):
            raise InvalidConfigError(
                f"strategy must be a registered strategy name or an object with an "
                f"order(providers) method, got {strategy!r}"
            )
        self.strategy: Strategy = strategy
        self.single_attempt = bool(getattr(strategy, "single_attempt", False))
        self.uses_cooldown = bool(getattr(strategy, "uses_cooldown", True))
        self.failure_message = str(getattr(strategy, "failure_message", "provider failed"))
        self.failure_level = int(getattr(strategy, "failure_level", logging.WARNING))
        # The runners' quick path takes failures only while nothing a failure logs is enabled
        # (the failure, a cooldown starting at WARNING, a fallback answering at INFO).
        self.quiet_level = max(self.failure_level, logging.WARNING)
        self.on_attempt_start: Callable[[str], None] | None = getattr(
            strategy, "on_attempt_start", None
        )
        self.on_attempt_end: Callable[[str, float, bool], None] | None = getattr(
            strategy, "on_attempt_end", None
        )
        self.hedge_delay: float | None = getattr(strategy, "hedge_delay", None)
        self.in_list_order = bool(getattr(strategy, "in_list_order", False))
        self.max_hedges = int(getattr(strategy, "max_hedges", 0))
        self.providers = snapshot_providers(providers)
        self.is_async = is_async
        if cooldown is not UNSET:
            cooldown = _config.check_tracker(cooldown, "cooldown=")
            if cooldown is not None:
                _tracker_for(cooldown, is_async, "cooldown=")
        self.cooldown = cooldown
        self.exempt = None if exempt is None else _config.check_names(exempt, "exempt=")
        self.fallback_on = _predicate("fallback_on", fallback_on)
        self.cooldown_on = None if cooldown_on is None else _predicate("cooldown_on", cooldown_on)
        self.logger = None if logger is None else _config.check_logger(logger, "logger=")
        self.timeout = _seconds("timeout", timeout)
        self.attempt_timeout = _seconds("attempt_timeout", attempt_timeout)
        if self.attempt_timeout is not None and not is_async:
            raise InvalidConfigError(
                "attempt_timeout needs an async routed function: a running sync call cannot be "
                "interrupted; give your client its own timeout, and timeout= for the whole call"
            )
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise InvalidConfigError(
                f"max_attempts must be an int >= 1 or None, got {max_attempts!r}"
            )
        self.max_attempts = max_attempts
        self.listeners = _config.check_listeners(listeners or (), "listeners=")
        self.name = name
        self.clock = clock or default_clock
        # Calls of such a route may take the runners' fast path (the first provider answers).
        self.fast = (
            isinstance(self.providers, tuple)
            and bool(self.providers[0])  # an empty list raises NoProvidersError at call time
            and self.timeout is None
            and self.attempt_timeout is None
            and self.max_attempts is None
            and self.on_attempt_start is None
            and self.on_attempt_end is None
            and self.hedge_delay is None
            and not self.listeners
        )
        self._cached: TrackerForms = UNTRACKED
        #: Made by ``_core.runner`` on first use.
        self.runner: Any = None

    def tracker(self) -> Any:
        """Return the tracker of this call in runner form, or None when not tracking."""
        return self.tracker_forms()[1]

    def tracker_forms(self) -> TrackerForms:
        """Return this call's tracker in every form the runners use (see ``TrackerForms``)."""
        if not self.uses_cooldown:
            return UNTRACKED
        tracker = self.cooldown
        if tracker is UNSET:
            tracker = _config._current.cooldown
        return self.forms_of(tracker)

    def forms_of(self, tracker: AnyTracker | None) -> TrackerForms:
        """Return the forms of ``tracker`` (this route's or the global one; None: untracked)."""
        if tracker is None:
            return UNTRACKED
        forms = self._cached
        if forms[0] is not tracker:
            # Validated once per tracker object, not per call: the global one may change.
            ready = _tracker_for(tracker, self.is_async, "the global cooldown tracker")
            local = ready.tracker if type(ready) is AsyncAdapter else ready
            if inspect.iscoroutinefunction(getattr(local, "is_available", None)):
                local = None
            known_names = getattr(local, "_known_names", None)
            known = None if known_names is None else known_names()
            forms = self._cached = (tracker, ready, local, known)
        return forms
