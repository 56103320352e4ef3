"""The strategy protocol, and the capabilities a strategy may declare (read in one place)."""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from resilient_routing import _validate
from resilient_routing._exceptions import InvalidConfigError

__all__ = ["Capabilities", "Strategy", "capabilities"]


@runtime_checkable
class Strategy(Protocol):
    """Chooses which providers a routed call tries, and in which order.

    Only :meth:`order` is required. Optional attributes, read once when a routed function is
    decorated (see :class:`Capabilities`), tune what the core does around it:

    - ``single_attempt`` (default False): try only the first provider chosen and re-raise its
      own exception (with a note naming it) instead of falling over.
    - ``uses_cooldown`` (default True): skip providers cooling down and record each outcome in
      the tracker.
    - ``failure_message`` / ``failure_level``: the log record of a failed attempt (default
      ``"provider failed"`` at WARNING).
    - ``on_attempt_start(name)`` / ``on_attempt_end(name, seconds, ok)``: called around every
      attempt (``on_attempt_end`` also when it is cancelled), for strategies that learn from
      outcomes (latency, calls in flight).
    - ``hedge_delay`` / ``max_hedges`` / ``executor``: run attempts in parallel (see
      :class:`~resilient_routing.strategies.Hedged`).
    - ``in_list_order`` (default False): a promise that :meth:`order` always returns the list
      order (a single-attempt strategy: always chooses the first provider), so the core need
      not ask (it saves a call on every routed call).
    - ``check_providers(names)``: raise ``InvalidConfigError`` when the strategy cannot route
      over these provider names (say, a weight naming none of them); called when a routed
      function is decorated (its providers known then) or at each call (a providers
      callable).

    For multi-attempt strategies the core tries the chosen providers in order, never one
    twice, and always ends with the terminus (the last provider of the list) when the others
    failed or were skipped: a strategy need not (and cannot) place the terminus elsewhere.
    """

    def order(self, providers: Sequence[Any]) -> Iterable[int]:
        """Return the indices of ``providers`` in the order to try them."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a strategy declares beside its order: every optional attribute, with its default.

    Attributes:
        single_attempt: one attempt per call; its failure propagates as raised.
        uses_cooldown: consult the tracker and record outcomes.
        in_list_order: ``order`` is always the list order (the core need not ask).
        failure_message: the message of a failed attempt's log record.
        failure_level: the level of that record.
        on_attempt_start: called with the provider's name when an attempt starts.
        on_attempt_end: called with the name, the seconds taken and whether it answered.
        hedge_delay: seconds before another attempt starts beside a running one (None: none).
        max_hedges: how many extra attempts may run at once.
        executor: where sync hedged attempts run (None: a shared pool).
        check_providers: checks the provider names the strategy will route over.
    """

    single_attempt: bool = False
    uses_cooldown: bool = True
    in_list_order: bool = False
    failure_message: str = "provider failed"
    failure_level: int = logging.WARNING
    on_attempt_start: Callable[[str], None] | None = None
    on_attempt_end: Callable[[str, float, bool], None] | None = None
    hedge_delay: float | None = None
    max_hedges: int = 0
    executor: concurrent.futures.Executor | None = None
    check_providers: Callable[[Sequence[str]], None] | None = None


def capabilities(strategy: object) -> Capabilities:
    """Return what ``strategy`` declares, checked; its attributes are read here and only here.

    Raises:
        InvalidConfigError: ``strategy`` has no ``order`` method, or an attribute has the
            wrong type.
    """
    if isinstance(strategy, type):
        raise InvalidConfigError(
            f"strategy must be a strategy instance such as {strategy.__name__}(), "
            f"got the class {strategy!r}"
        )
    if not callable(getattr(strategy, "order", None)):
        raise InvalidConfigError(
            f"strategy must be a registered strategy name or an object with an "
            f"order(providers) method, got {strategy!r}"
        )
    defaults = Capabilities()
    found = {
        name: getattr(strategy, name)
        for name in Capabilities.__slots__
        if getattr(strategy, name, None) is not None
    }
    level = found.get("failure_level", defaults.failure_level)
    hedge_delay = found.get("hedge_delay")
    where = f"strategy {strategy!r}:"
    for hook in ("on_attempt_start", "on_attempt_end", "check_providers"):
        if hook in found:
            _validate.callable_(f"{where} {hook}", found[hook], "a callable")
    return Capabilities(
        single_attempt=bool(found.get("single_attempt", False)),
        uses_cooldown=bool(found.get("uses_cooldown", True)),
        in_list_order=bool(found.get("in_list_order", False)),
        failure_message=str(found.get("failure_message", defaults.failure_message)),
        failure_level=_validate.count(f"{where} failure_level", level, low=0),
        on_attempt_start=found.get("on_attempt_start"),
        on_attempt_end=found.get("on_attempt_end"),
        hedge_delay=None
        if hedge_delay is None
        else _validate.seconds(f"{where} hedge_delay", hedge_delay, zero=True),
        max_hedges=_validate.count(f"{where} max_hedges", found.get("max_hedges", 0), low=0),
        executor=found.get("executor"),
        check_providers=found.get("check_providers"),
    )
