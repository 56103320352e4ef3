"""The public surface: complete, sorted, importable without optional dependencies."""

from __future__ import annotations

import concurrent.futures
import copy
import inspect
import multiprocessing
import pickle
import subprocess
import sys

import httpx
import pytest

import resilient_routing
from resilient_routing import (
    AllProvidersFailedError,
    InvalidConfigError,
    NoProvidersError,
    RoutingError,
    RoutingTimeoutError,
    SlowCallError,
)
from resilient_routing._exceptions import UnpicklableFailure
from resilient_routing.cooldown import RedisCooldownTracker


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name, sorted, and each resolves."""
    # pytest rewrites the asserts of packages with a plugin, adding "@py_builtins" names.
    public = {n for n in dir(resilient_routing) if not n.startswith(("_", "@"))}
    modules = {"contrib", "cooldown", "events", "pytest_plugin", "strategies", "testing"}

    def isort_style(name: str) -> tuple[int, str]:
        # Constants, then classes, then functions: the order ruff's RUF022 keeps.
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert resilient_routing.__all__ == sorted(resilient_routing.__all__, key=isort_style)
    lazy = {  # loaded on first use
        "RedisCooldownTracker",
        "AsyncRedisCooldownTracker",
        "Routed",
        "AsyncRouted",
        "RoutedClassmethod",
        "AsyncRoutedClassmethod",
        "AsyncStreamRouted",
        "RouteResult",
    }
    assert public - modules - lazy == set(resilient_routing.__all__) - lazy
    for name in resilient_routing.__all__:
        assert getattr(resilient_routing, name) is not None


def test_import_does_not_import_redis() -> None:
    """Import resilient_routing leaves redis, the events and the typing protocols unloaded."""
    code = (
        "import sys, resilient_routing, resilient_routing.cooldown; "
        "print([m for m in ('redis', 'resilient_routing.events', 'resilient_routing._typing', "
        "'resilient_routing._result') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute() -> None:
    """Missing names raise AttributeError as usual."""
    with pytest.raises(AttributeError, match="Nope"):
        resilient_routing.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_error_hierarchy() -> None:
    """Every error is a RoutingError; config and empty-list errors are ValueErrors too."""
    assert issubclass(NoProvidersError, ValueError) and issubclass(NoProvidersError, RoutingError)
    assert issubclass(InvalidConfigError, ValueError) and issubclass(
        InvalidConfigError, RoutingError
    )
    assert issubclass(AllProvidersFailedError, RoutingError)
    assert issubclass(RoutingError, Exception)


def test_all_failed_error_pickles() -> None:
    """AllProvidersFailedError survives pickling (multiprocessing, Celery)."""
    err = AllProvidersFailedError([("a", ValueError("x"))], 3, 5.0, ("b",), max_attempts=2)
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err)
    assert str(err) == (
        "1 of 3 providers failed, 1 skipped in cooldown, 1 not attempted (max_attempts=2) "
        "(last error: ValueError: x)"
    )
    assert back.failures[0][0] == "a" and back.total == 3 and back.retry_after == 5.0
    assert (back.skipped, back.not_attempted, back.max_attempts) == (("b",), 1, 2)


@pytest.mark.parametrize(
    "error",
    [
        AllProvidersFailedError([("a", ValueError("x"))], 2, 1.5, ("b",)),
        RoutingTimeoutError(2.0, [("a", ValueError("x"))]),
        SlowCallError("a", 3.0, 1.0),
    ],
    ids=["all failed", "timeout", "slow call"],
)
def test_routing_errors_keep_their_notes_across_pickle_and_copy(error: Exception) -> None:
    """A note added by the application (or a framework) crosses processes with the error."""
    error.add_note("job 42")
    assert pickle.loads(pickle.dumps(error)).__notes__ == ["job 42"]
    assert copy.copy(error).__notes__ == ["job 42"]


def _http_failure() -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://api.example.com/v1/chat")
    response = httpx.Response(429, request=request)
    return httpx.HTTPStatusError("429 Too Many Requests", request=request, response=response)


def _exhausted_with_an_http_failure() -> None:
    raise AllProvidersFailedError([("a", ValueError("x")), ("b", _http_failure())], 2)


def test_an_error_holding_a_clients_unpicklable_exception_still_crosses_processes() -> None:
    """Httpx's (and openai's) errors cannot be rebuilt from a pickle: they are stood for.

    Otherwise a ProcessPoolExecutor worker raising the routing error breaks the whole pool.
    """
    for error in (
        AllProvidersFailedError([("a", ValueError("x")), ("b", _http_failure())], 2),
        RoutingTimeoutError(5.0, [("a", ValueError("x")), ("b", _http_failure())]),
    ):
        back = pickle.loads(pickle.dumps(error))
        assert str(back) == str(error)
        [(first, kept), (second, stand_in)] = back.failures
        assert (first, type(kept), str(kept)) == ("a", ValueError, "x")
        assert second == "b" and isinstance(stand_in, UnpicklableFailure)
        assert stand_in.type_name == "httpx.HTTPStatusError"
        assert str(stand_in) == "httpx.HTTPStatusError: 429 Too Many Requests"
    context = multiprocessing.get_context("fork")
    with (
        concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool,
        pytest.raises(AllProvidersFailedError) as info,
    ):
        pool.submit(_exhausted_with_an_http_failure).result(timeout=60)
    assert [name for name, _ in info.value.failures] == ["a", "b"]


def test_a_copy_of_a_routing_error_keeps_its_failures_as_they_are() -> None:
    """Only pickling stands in for what cannot be rebuilt; copy keeps the very exceptions."""
    http = _http_failure()
    for error in (
        AllProvidersFailedError([("a", http)], 1),
        RoutingTimeoutError(5.0, [("a", http)]),
    ):
        error.add_note("job 42")
        made = copy.copy(error)
        assert made.failures[0][1] is http and made.__notes__ == ["job 42"]
        assert str(made) == str(error)


def test_signatures_spell_out_every_option_and_its_default() -> None:
    """help(), IDEs and inspect show the keywords themselves, not ``**options``."""
    for function in (resilient_routing.execute, resilient_routing.execute_async):
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:2] == ["providers", "fn"]
        assert parameters["strategy"].default == "fallback"
        assert parameters["fallback_on"].default is Exception
        assert parameters["exempt"].default is None and parameters["logger"].default is None
        assert parameters["cooldown"].default is resilient_routing.UNSET
        assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    assert "timeout" in inspect.signature(resilient_routing.routed).parameters
    for tracker in (resilient_routing.InMemoryCooldownTracker, RedisCooldownTracker):
        parameters = inspect.signature(tracker).parameters
        assert parameters["failure_threshold"].default == 3
        assert parameters["cooldown"].default == 30.0
        assert parameters["max_cooldown"].default == 300.0
        assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def test_version_is_the_distributions() -> None:
    """resilient_routing.__version__ is the version the package was built with."""
    from importlib.metadata import version

    assert resilient_routing.__version__ == version("resilient-routing")
