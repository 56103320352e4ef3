"""The routing options: typed once for callers, checked once, kept frozen.

``routed(...)``, ``execute(...)`` and ``execute_async(...)`` take the same keyword options
(:class:`RoutingOptions`); :meth:`Options.of` checks them all and returns the frozen
:class:`Options` a route is built from.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from resilient_routing import _validate
from resilient_routing._validate import UNSET, AnyTracker, ExceptionFilter, Unset
from resilient_routing.strategies._protocol import capabilities
from resilient_routing.strategies._registry import get_strategy

from .providers import ProviderSnapshot, snapshot_providers

if TYPE_CHECKING:
    from resilient_routing.events import Listener
    from resilient_routing.strategies import Strategy

__all__ = ["CommonOptions", "Options", "RoutingOptions", "parameters"]


class CommonOptions(TypedDict, total=False):
    """The keyword options beside ``stream`` (which decides the type ``routed()`` returns)."""

    strategy: str | Strategy
    cooldown: AnyTracker | None
    exempt: Iterable[str] | None
    fallback_on: ExceptionFilter
    cooldown_on: ExceptionFilter | None
    timeout: float | None
    attempt_timeout: float | None
    max_attempts: int | None
    listeners: Iterable[Listener] | None
    logger: logging.Logger | None
    first_item_timeout: float | None
    idle_timeout: float | None
    slow_call: float | None


class RoutingOptions(CommonOptions, total=False):
    """The keyword options of ``routed()``, ``execute()`` and ``execute_async()``.

    See :func:`resilient_routing.routed` for what each one means.
    """

    stream: bool


@dataclass(frozen=True, slots=True)
class Options:
    """The checked options of a route (see :class:`RoutingOptions`); the defaults live here.

    ``cooldown`` is ``UNSET`` when omitted (the global tracker, read at call time);
    ``exempt`` and ``logger`` are None when omitted (the global ones, read at call time);
    ``fallback_on`` is None when every Exception falls over (the default: no predicate to call
    on a failure).
    """

    providers: ProviderSnapshot
    strategy: str | Strategy = "fallback"
    cooldown: AnyTracker | Unset | None = UNSET
    exempt: frozenset[str] | None = None
    fallback_on: Callable[[Exception], bool] | None = None
    cooldown_on: Callable[[Exception], bool] | None = None
    timeout: float | None = None
    attempt_timeout: float | None = None
    max_attempts: int | None = None
    listeners: tuple[Listener, ...] = ()
    logger: logging.Logger | None = None
    stream: bool = False
    first_item_timeout: float | None = None
    idle_timeout: float | None = None
    slow_call: float | None = None

    @classmethod
    def of(cls, providers: object, options: Mapping[str, Any], caller: str) -> Options:
        """Check ``providers`` and the keyword ``options`` given to ``caller``.

        Raises:
            InvalidConfigError: an option has a bad value (the message names it).
            TypeError: ``options`` names an option that does not exist.
        """
        unknown = sorted(set(options) - _NAMES)
        if unknown:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {unknown[0]!r}; the options "
                f"are: {', '.join(sorted(_NAMES))}"
            )
        source = snapshot_providers(providers)
        if not isinstance(source, tuple):  # read at each call: it must take no argument
            _validate.callable_("providers", source, "a zero-argument callable", args=0)
        checked: dict[str, Any] = {"providers": source}
        for name, value in options.items():
            checked[name] = _CHECKS[name](name, value)
        return cls(**checked)


def _strategy(option: str, value: object) -> object:
    # An unknown name, or a factory that builds no strategy, fails now.
    capabilities(get_strategy(value) if isinstance(value, str) else value)
    return value


def _fallback_on(option: str, value: object) -> object:
    return None if value is Exception else _validate.exception_filter(option, value)


def _optional(check: Callable[[str, object], object]) -> Callable[[str, object], object]:
    return lambda option, value: None if value is None else check(option, value)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "strategy": _strategy,
    "cooldown": _validate.tracker,
    "exempt": _optional(_validate.names),
    "fallback_on": _fallback_on,
    "cooldown_on": _optional(_validate.exception_filter),
    "timeout": _optional(_validate.seconds),
    "attempt_timeout": _optional(_validate.seconds),
    "max_attempts": _optional(_validate.count),
    "listeners": lambda option, value: () if value is None else _validate.listeners(option, value),
    "logger": _optional(_validate.logger),
    "stream": _validate.flag,
    "first_item_timeout": _optional(_validate.seconds),
    "idle_timeout": _optional(_validate.seconds),
    "slow_call": _optional(_validate.seconds),
}
_NAMES = frozenset(_CHECKS)


#: What a default means, where the kept form says it otherwise (``fallback_on``: every
#: Exception; ``cooldown``: the global tracker, read at each call).
_SHOWN_DEFAULTS: dict[str, object] = {"fallback_on": Exception, "listeners": None}


def parameters() -> list[inspect.Parameter]:
    """The routing options as keyword-only parameters with their defaults (for signatures)."""
    fields = Options.__dataclass_fields__
    return [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=_SHOWN_DEFAULTS.get(name, fields[name].default),
            annotation=getattr(annotation, "__forward_arg__", annotation),
        )
        for name, annotation in RoutingOptions.__annotations__.items()
    ]
