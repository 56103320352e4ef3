"""Fake providers that follow a script, for tests of routed code."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from ._clock import FakeClock

__all__ = ["Delayed", "ScriptExhaustedError", "ScriptedProvider"]


class ScriptExhaustedError(AssertionError):
    """A ScriptedProvider with ``repeat=False`` was called more times than scripted."""


@dataclass(frozen=True, slots=True)
class Delayed:
    """A script step that takes ``seconds`` before its ``outcome`` (a value or an exception)."""

    seconds: float
    outcome: object = None


class ScriptedProvider:
    """A provider whose calls follow a script of results, exceptions and latencies.

    Each call takes the next step: an exception (instance or class) is raised, a
    :class:`Delayed` step waits (advancing ``clock`` when one is given, else sleeping) and
    then applies its outcome, anything else is returned. When the script runs out the last
    step repeats, or :class:`ScriptExhaustedError` is raised with ``repeat=False``.

    Use it as the provider object itself; the routed function calls it::

        flaky = ScriptedProvider("flaky", TimeoutError(), "ok")
        steady = ScriptedProvider("steady", "fine")

        @routed(providers=[flaky, steady])
        def ask(provider, question):
            return provider(question)

    Attributes:
        name: the provider's name.
        calls: the ``(args, kwargs)`` of every call, in order.
    """

    def __init__(
        self,
        name: str,
        *script: object,
        clock: FakeClock | None = None,
        repeat: bool = True,
    ) -> None:
        if not script:
            script = (None,)
        self.name = name
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._script = script
        self._clock = clock
        self._repeat = repeat
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScriptedProvider({self.name!r}, {len(self._script)} steps)"

    def _step(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        with self._lock:
            index = len(self.calls)
            self.calls.append((args, kwargs))
        if index >= len(self._script):
            if not self._repeat:
                raise ScriptExhaustedError(
                    f"provider {self.name!r} was called {index + 1} times; "
                    f"its script has {len(self._script)} steps"
                )
            index = len(self._script) - 1
        return self._script[index]

    @staticmethod
    def _apply(outcome: object) -> Any:
        if isinstance(outcome, BaseException) or (
            isinstance(outcome, type) and issubclass(outcome, BaseException)
        ):
            if isinstance(outcome, BaseException):
                # Raised again, an instance would keep every earlier raise's traceback.
                raise outcome.with_traceback(None)
            raise outcome
        return outcome

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Take the next step of the script (sync)."""
        step = self._step(args, kwargs)
        if isinstance(step, Delayed):
            if self._clock is not None:
                self._clock.advance(step.seconds)
            else:
                time.sleep(step.seconds)
            step = step.outcome
        return self._apply(step)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Take the next step of the script (async: a delay awaits instead of blocking)."""
        step = self._step(args, kwargs)
        if isinstance(step, Delayed):
            if self._clock is not None:
                self._clock.advance(step.seconds)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(step.seconds)
            step = step.outcome
        return self._apply(step)

    @property
    def call_count(self) -> int:
        """How many times the provider was called."""
        return len(self.calls)
