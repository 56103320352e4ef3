"""Stacking with tenacity, above and below @routed."""

from __future__ import annotations

import asyncio

import pytest
import tenacity
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_none

from resilient_routing import AllProvidersFailedError, InMemoryCooldownTracker, routed
from resilient_routing.testing import FakeClock


class RateLimitError(Exception):
    pass


class Down(Exception):
    pass


def test_retry_above_routed_retries_the_whole_routing() -> None:
    """@retry over @routed re-runs the routing across all providers."""
    calls: list[str] = []
    outcomes = iter([Down(), Down(), Down(), Down(), "ok"])

    @retry(
        stop=stop_after_attempt(3),
        wait=wait_none(),
        retry=retry_if_exception_type(AllProvidersFailedError),
    )
    @routed(providers=["a", "b"], cooldown=None)
    def call(provider: str) -> str:
        calls.append(provider)
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return f"{provider}:{outcome}"

    assert call() == "a:ok"
    assert calls == ["a", "b", "a", "b", "a"]


def test_retry_above_single_attempt_sees_provider_exception() -> None:
    """retry_if_exception_type(RateLimitError) keeps working over a single-attempt strategy."""
    calls: list[str] = []

    @retry(
        stop=stop_after_attempt(4), wait=wait_none(), retry=retry_if_exception_type(RateLimitError)
    )
    @routed(providers=["a", "b"], strategy="round_robin")
    def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            raise RateLimitError()
        return provider

    assert call() == "b"
    assert calls == ["a", "b"]


def test_routed_above_retry_retries_each_provider_first(clock: FakeClock) -> None:
    """@routed over @retry retries a provider before falling over; failures hold the last error."""
    calls: list[str] = []
    errors: list[Exception] = []
    tracker = InMemoryCooldownTracker(failure_threshold=1, clock=clock)

    @routed(providers=["a", "b"], cooldown=tracker)
    @retry(stop=stop_after_attempt(3), wait=wait_none())
    def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            errors.append(Down(f"a #{len(errors)}"))
            raise errors[-1]
        return provider

    result = call.execute()
    assert calls == ["a", "a", "a", "b"]
    assert result.failures == (("a", errors[-1]),)
    assert not tracker.is_available("a")


def test_retry_error_judged_by_last_exception_for_fallback_on() -> None:
    """fallback_on sees the last attempt's exception, not tenacity.RetryError."""
    calls: list[str] = []

    @routed(providers=["a", "b"], fallback_on=Down, cooldown=None)
    @retry(stop=stop_after_attempt(2), wait=wait_none())
    def call(provider: str) -> str:
        calls.append(provider)
        if provider == "a":
            raise Down()
        return provider

    assert call() == "b"
    calls.clear()

    @routed(providers=["a", "b"], fallback_on=RateLimitError, cooldown=None)
    @retry(stop=stop_after_attempt(2), wait=wait_none())
    def strict(provider: str) -> str:
        calls.append(provider)
        raise Down()

    with pytest.raises(tenacity.RetryError):
        strict()
    assert calls == ["a", "a"]


def test_all_failed_cause_is_last_inner_exception() -> None:
    """When every retried provider fails, __cause__ is the last attempt's own exception."""
    last: list[Exception] = []

    @routed(providers=["a", "b"], cooldown=None)
    @retry(stop=stop_after_attempt(2), wait=wait_none())
    def call(provider: str) -> str:
        last.append(Down(provider))
        raise last[-1]

    with pytest.raises(AllProvidersFailedError) as info:
        call()
    assert info.value.__cause__ is last[-1]
    assert [e for _, e in info.value.failures] == [last[1], last[3]]


def test_retry_after_read_through_retry_error(clock: FakeClock) -> None:
    """A Retry-After on the last inner exception reaches the tracker."""
    tracker = InMemoryCooldownTracker(failure_threshold=99, clock=clock)

    class Limited(Exception):
        retry_after = 42

    @routed(providers=["a", "b"], cooldown=tracker)
    @retry(stop=stop_after_attempt(2), wait=wait_none())
    def call(provider: str) -> str:
        if provider == "a":
            raise Limited()
        return provider

    call()
    assert tracker.cooldown_remaining("a") == pytest.approx(42)


def test_single_attempt_reraises_retry_error_itself() -> None:
    """A single-attempt strategy re-raises exactly what the function raised: the RetryError."""

    @routed(providers=["a"], strategy="primary_only")
    @retry(stop=stop_after_attempt(2), wait=wait_none())
    def call(provider: str) -> str:
        raise Down()

    with pytest.raises(tenacity.RetryError):
        call()


async def test_async_stacking_both_ways() -> None:
    """Async tenacity over and under async @routed."""
    calls: list[str] = []

    @retry(stop=stop_after_attempt(2), wait=wait_none())
    @routed(providers=["a", "b"], cooldown=None)
    @retry(stop=stop_after_attempt(2), wait=wait_none())
    async def call(provider: str) -> str:
        await asyncio.sleep(0)
        calls.append(provider)
        if provider == "a":
            raise Down()
        return provider

    assert await call() == "b"
    assert calls == ["a", "a", "b"]


def test_reraise_mode_inner_tenacity() -> None:
    """With reraise=True below @routed, the provider's own exception is what falls over."""

    @routed(providers=["a", "b"], cooldown=None)
    @retry(stop=stop_after_attempt(2), wait=wait_none(), reraise=True)
    def call(provider: str) -> str:
        if provider == "a":
            raise Down("a")
        return provider

    result = call.execute()
    assert isinstance(result.failures[0][1], Down)


class Client:
    """A client whose methods are routed, under decorators that call them with ``self``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @retry(stop=stop_after_attempt(2), wait=wait_none(), reraise=True)
    @routed(providers=["a", "b"], cooldown=None)
    def generate(self, provider: str, prompt: str) -> str:
        self.calls.append(provider)
        if provider == "a":
            raise Down(provider)
        return f"{provider}:{prompt}"

    @retry(stop=stop_after_attempt(2), wait=wait_none(), reraise=True)
    @routed(providers=["a", "b"], cooldown=None)
    async def agenerate(self, provider: str, prompt: str) -> str:
        self.calls.append(provider)
        if provider == "a":
            raise Down(provider)
        return f"{provider}:{prompt}"

    @property
    @routed(providers=["a", "b"], cooldown=None)
    def status(self, provider: str) -> str:
        self.calls.append(provider)
        return f"{provider}:ok"


def test_retry_above_a_routed_method_routes_it_with_its_instance() -> None:
    """Tenacity calls the routed method with ``self`` first: the provider still goes after it."""
    client = Client()
    assert client.generate("hi") == "b:hi"
    assert asyncio.run(client.agenerate("hi")) == "b:hi"
    assert client.calls == ["a", "b", "a", "b"]


def test_a_property_and_an_unbound_call_route_a_method_with_its_instance() -> None:
    """A property calls its getter with the instance; so does ``vars(C)["m"](c, ...)``."""
    client = Client()
    assert client.status == "a:ok"
    routed_fn = vars(Client)["generate"].__wrapped__  # under tenacity's wrapper
    assert routed_fn(client, "x") == "b:x"
    result = routed_fn.execute(client, "y")
    assert (result.response, result.provider, result.attempt) == ("b:y", "b", 2)
    with pytest.raises(TypeError, match="without its instance"):
        routed_fn()
