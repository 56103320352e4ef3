"""resilient_routing: route one call across interchangeable providers.

Write the call for ONE provider, decorate it with ``@routed(strategy=..., providers=...)``,
and the call runs across the providers: ordered fallback ending on a terminus, round-robin
or your own strategy, skipping providers that are cooling down after failures.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._config import Config, configure, get_config
from ._decorator import routed
from ._exceptions import (
    AllProvidersFailedError,
    InvalidConfigError,
    NoProvidersError,
    RoutingError,
    RoutingTimeoutError,
    SlowCallError,
)
from ._execute import execute, execute_async
from ._recovery import wait_for_recovery
from ._routing.providers import provider_name
from ._routing.report import last_route
from ._validate import UNSET
from ._version import __version__ as __version__
from .cooldown._memory import InMemoryCooldownTracker
from .cooldown._protocol import AsyncCooldownTracker, CooldownTracker
from .strategies._protocol import Strategy
from .strategies._registry import available_strategies, get_strategy, register_strategy

if _TYPE_CHECKING:
    from ._result import RouteResult
    from ._typing import (
        AsyncRouted,
        AsyncRoutedClassmethod,
        AsyncStreamRouted,
        Routed,
        RoutedClassmethod,
    )
    from .cooldown._redis.tracker import AsyncRedisCooldownTracker, RedisCooldownTracker

__all__ = [
    "UNSET",
    "AllProvidersFailedError",
    "AsyncCooldownTracker",
    "AsyncRedisCooldownTracker",
    "AsyncRouted",
    "AsyncRoutedClassmethod",
    "AsyncStreamRouted",
    "Config",
    "CooldownTracker",
    "InMemoryCooldownTracker",
    "InvalidConfigError",
    "NoProvidersError",
    "RedisCooldownTracker",
    "RouteResult",
    "Routed",
    "RoutedClassmethod",
    "RoutingError",
    "RoutingTimeoutError",
    "SlowCallError",
    "Strategy",
    "available_strategies",
    "configure",
    "execute",
    "execute_async",
    "get_config",
    "get_strategy",
    "last_route",
    "provider_name",
    "register_strategy",
    "routed",
    "wait_for_recovery",
]


_TYPING = frozenset(
    ("Routed", "AsyncRouted", "RoutedClassmethod", "AsyncRoutedClassmethod", "AsyncStreamRouted")
)


def __getattr__(name: str) -> _Any:
    # Loaded when first asked for: the Redis trackers import redis (the core never needs it),
    # and RouteResult and the typing protocols cost import time that plain calls do not need.
    if name in ("RedisCooldownTracker", "AsyncRedisCooldownTracker"):
        from . import cooldown

        return getattr(cooldown, name)
    if name == "RouteResult":
        from ._result import RouteResult

        return RouteResult
    if name in _TYPING:
        from . import _typing

        return getattr(_typing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
