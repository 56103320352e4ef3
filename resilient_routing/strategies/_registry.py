"""The registry of named strategies."""

from __future__ import annotations

import threading
from collections.abc import Callable

from resilient_routing._exceptions import InvalidConfigError

from ._balancing import LeastBusy, LeastLatency, LoadBalanced, Weighted
from ._basic import Fallback, PrimaryOnly, RoundRobin
from ._hedged import Hedged
from ._protocol import Strategy

__all__ = [
    "available_strategies",
    "get_strategy",
    "register_strategy",
    "registered_name",
    "strategy_factory",
]

_lock = threading.Lock()
_factories: dict[str, Callable[[], Strategy]] = {}


def register_strategy(name: str, factory: Callable[[], Strategy], *, replace: bool = False) -> None:
    """Register a strategy under ``name`` so ``routed(strategy=name)`` can use it.

    Args:
        name: the name users pass as ``strategy=``.
        factory: a zero-argument callable (typically the strategy class) returning a new
            strategy; called once per routed function.
        replace: allow replacing a strategy already registered under ``name``.

    Raises:
        InvalidConfigError: ``name`` is not a non-empty str, ``factory`` is not callable, or
            the name is taken and ``replace`` is false.
    """
    if not isinstance(name, str) or not name:
        raise InvalidConfigError(f"a strategy name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise InvalidConfigError(
            f"the factory of strategy {name!r} must be a zero-argument callable, got {factory!r}"
        )
    with _lock:
        if name in _factories and not replace:
            raise InvalidConfigError(
                f"strategy {name!r} is already registered; pass replace=True to replace it"
            )
        _factories[name] = factory


def get_strategy(name: str) -> Strategy:
    """Return a NEW strategy built by the factory registered under ``name``.

    Raises:
        InvalidConfigError: no strategy has that name, or its factory built something that is
            not a strategy.
    """
    factory = strategy_factory(name)
    try:
        strategy = factory()
    except TypeError as exc:
        raise InvalidConfigError(
            f"the factory of strategy {name!r} must build a strategy with no arguments: {exc}"
        ) from exc
    if not callable(getattr(strategy, "order", None)):
        raise InvalidConfigError(
            f"the factory of strategy {name!r} returned {strategy!r}, "
            "which has no order(providers) method"
        )
    return strategy


def strategy_factory(name: str) -> Callable[..., Strategy]:
    """Return the factory registered under ``name`` (to build a strategy with options).

    Raises:
        InvalidConfigError: no strategy has that name.
    """
    factory = _factories.get(name)
    if factory is None:
        known = ", ".join(repr(n) for n in available_strategies())
        raise InvalidConfigError(f"unknown strategy {name!r}: expected one of {known}")
    return factory


def registered_name(strategy: object) -> str:
    """Return the name ``strategy``'s class is registered under, else the class's own name."""
    cls = type(strategy)
    with _lock:
        for name, factory in _factories.items():
            if factory is cls:
                return name
    return cls.__name__


def available_strategies() -> list[str]:
    """Return the registered strategy names, sorted."""
    return sorted(_factories)


_BUILT_IN: tuple[tuple[str, Callable[[], Strategy]], ...] = (
    ("fallback", Fallback),
    ("hedged", Hedged),
    ("least_busy", LeastBusy),
    ("least_latency", LeastLatency),
    ("load_balanced", LoadBalanced),
    ("primary_only", PrimaryOnly),
    ("round_robin", RoundRobin),
    ("weighted", Weighted),
)
for _name, _factory in _BUILT_IN:
    register_strategy(_name, _factory)
