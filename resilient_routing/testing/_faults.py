"""Fault injection: make a share of calls to named providers fail, slow down or time out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from resilient_routing import _validate
from resilient_routing._exceptions import InvalidConfigError
from resilient_routing._routing.providers import provider_name

__all__ = ["Fault", "FaultInjector", "InjectedFaultError", "InjectedTimeoutError"]

F = TypeVar("F", bound=Callable[..., Any])


class InjectedFaultError(Exception):
    """The failure a :class:`Fault` raises by default."""


class InjectedTimeoutError(TimeoutError):
    """The timeout a :class:`Fault` raises after ``timeout_after`` seconds."""


def _rate(name: str, value: float) -> float:
    return _validate.number(name, value, high=1.0, unit=" (a share of calls)")


def _seconds(name: str, value: float) -> float:
    return _validate.seconds(name, value, zero=True)


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to a share of calls of one provider.

    Args:
        failure_rate: share of calls that raise ``error()`` at once.
        timeout_rate: share of calls that wait ``timeout_after`` seconds, then raise
            :class:`InjectedTimeoutError` (drawn after failures: the two shares add up).
        slow_rate: share of the calls that go through which first wait ``slow_by`` seconds.
        slow_by: the added latency of a slowed call.
        timeout_after: how long a timed-out call hangs.
        error: builds the exception of an injected failure.
    """

    failure_rate: float = 0.0
    timeout_rate: float = 0.0
    slow_rate: float = 0.0
    slow_by: float = 0.0
    timeout_after: float = 0.0
    error: Callable[[], BaseException] = field(
        default=lambda: InjectedFaultError("injected failure")
    )

    def __post_init__(self) -> None:
        _rate("failure_rate", self.failure_rate)
        _rate("timeout_rate", self.timeout_rate)
        _rate("slow_rate", self.slow_rate)
        if self.failure_rate + self.timeout_rate > 1:
            raise InvalidConfigError(
                "failure_rate + timeout_rate must be <= 1, got "
                f"{self.failure_rate} + {self.timeout_rate}"
            )
        _seconds("slow_by", self.slow_by)
        _seconds("timeout_after", self.timeout_after)
        if not callable(self.error):
            raise InvalidConfigError(f"error must build an exception, got {self.error!r}")


class FaultInjector:
    """Wraps the per-provider function so calls to named providers misbehave on purpose.

    Chaos for staging and tests: put it *below* ``@routed`` so the routing sees the faults::

        chaos = FaultInjector({"gemini": Fault(failure_rate=0.2, slow_rate=0.1, slow_by=2)})

        @routed(providers=["gemini", "grok", "laozhang"])
        @chaos
        async def generate(provider, prompt): ...

    Args:
        faults: provider name -> :class:`Fault`.
        rng: a ``random.Random`` (seed it for reproducible chaos).
        enabled: start enabled; ``enable()`` / ``disable()`` switch at run time.
        sleep: the sync wait (``time.sleep``); give a FakeClock's ``advance`` in tests.
        async_sleep: the async wait (``asyncio.sleep``).
    """

    def __init__(
        self,
        faults: Mapping[str, Fault],
        *,
        rng: random.Random | None = None,
        enabled: bool = True,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        for name, fault in faults.items():
            if not isinstance(fault, Fault):
                raise InvalidConfigError(f"the fault of {name!r} must be a Fault, got {fault!r}")
        self.faults = dict(faults)
        self.enabled = enabled
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._async_sleep = async_sleep

    def enable(self) -> None:
        """Inject faults from now on."""
        self.enabled = True

    def disable(self) -> None:
        """Stop injecting faults (calls go straight through)."""
        self.enabled = False

    def _draw(self, provider: object) -> tuple[str, Fault] | None:
        if not self.enabled:
            return None
        fault = self.faults.get(provider_name(provider))
        if fault is None:
            return None
        r = self._rng.random()
        if r < fault.failure_rate:
            return "fail", fault
        if r < fault.failure_rate + fault.timeout_rate:
            return "timeout", fault
        if fault.slow_rate and self._rng.random() < fault.slow_rate:
            return "slow", fault
        return None

    def _act(self, provider: Any) -> tuple[float, BaseException | None]:
        """Return how long this call waits first, and what it raises then (None: it runs)."""
        drawn = self._draw(provider)
        if drawn is None:
            return 0.0, None
        what, fault = drawn
        if what == "fail":
            return 0.0, fault.error()
        if what == "timeout":
            error = InjectedTimeoutError(f"injected timeout of {provider_name(provider)!r}")
            return fault.timeout_after, error
        return fault.slow_by, None

    def __call__(self, fn: F) -> F:
        """Wrap ``fn(provider, ...)`` (sync or async, a generator too) with the faults."""
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def async_stream(provider: Any, *args: Any, **kwargs: Any) -> Any:
                wait, error = self._act(provider)
                if wait:
                    await self._async_sleep(wait)  # never the event loop's thread asleep
                if error is not None:
                    try:
                        raise error
                    finally:
                        del error  # its traceback holds this frame
                async with contextlib.aclosing(fn(provider, *args, **kwargs)) as items:
                    async for item in items:
                        yield item

            return async_stream  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(provider: Any, *args: Any, **kwargs: Any) -> Any:
                wait, error = self._act(provider)
                if wait:
                    await self._async_sleep(wait)
                if error is not None:
                    try:
                        raise error
                    finally:
                        del error  # its traceback holds this frame
                return await fn(provider, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(provider: Any, *args: Any, **kwargs: Any) -> Any:
            wait, error = self._act(provider)
            if wait:
                self._sleep(wait)
            if error is not None:
                try:
                    raise error
                finally:
                    del error  # its traceback holds this frame
            return fn(provider, *args, **kwargs)

        return wrapper  # type: ignore[return-value]
