"""One way to drive a routed function in sync and async mode, so each rule is tested in both."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from resilient_routing import RouteResult, routed


class Harness:
    """Builds a routed function whose providers behave as scripted, sync or async.

    ``script`` maps a provider name to what calling it does: an exception (instance or class)
    is raised, a callable is called with the provider, anything else is returned. Providers
    missing from the script return ``"ok:<name>"``. ``calls`` lists the names called, in order.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls: list[str] = []

    def _outcome(self, provider: Any, script: Mapping[str, object]) -> object:
        name = provider if isinstance(provider, str) else provider.name
        self.calls.append(name)
        outcome = script.get(name, f"ok:{name}")
        if isinstance(outcome, BaseException) or (
            isinstance(outcome, type) and issubclass(outcome, BaseException)
        ):
            raise outcome
        if callable(outcome):
            return outcome(provider)
        return outcome

    def routed(
        self, script: Mapping[str, object] | None = None, **options: Any
    ) -> Callable[[], RouteResult[Any]]:
        """Return a zero-argument function that runs one routed call and returns its result."""
        script = script or {}
        if self.mode == "sync":

            @routed(**options)
            def call(provider: Any) -> object:
                return self._outcome(provider, script)

            return call.execute

        @routed(**options)
        async def acall(provider: Any) -> object:
            await asyncio.sleep(0)
            return self._outcome(provider, script)

        return lambda: asyncio.run(acall.execute())


def assert_freed(call: Callable[[], object], refs: list[weakref.ref[Any]]) -> None:
    """Run ``call`` with the garbage collector off; assert what ``refs`` point to is gone.

    A failure freed only by the collector was left in a reference cycle. The thread's
    ``last_route()`` is replaced by another call first; a pool thread that ran an attempt is
    given a moment to let go of it (it does just after handing its outcome over).
    """
    healthy = routed(providers=["z"], cooldown=None)(lambda provider: provider)
    gc.collect()
    gc.disable()
    try:
        call()
        healthy()
        deadline = time.monotonic() + 10
        while any(ref() is not None for ref in refs) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert refs and [ref() for ref in refs] == [None] * len(refs)
    finally:
        gc.enable()


_T = TypeVar("_T")


class Kept(list["weakref.ref[Any]"]):
    """Weak references to what a test expects freed: ``kept(obj)`` notes ``obj``, returns it."""

    def __call__(self, obj: _T) -> _T:
        self.append(weakref.ref(obj))
        return obj
