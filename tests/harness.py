"""One way to drive a routed function in sync and async mode, so each rule is tested in both."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

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
