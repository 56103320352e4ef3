"""The in-process cooldown tracker."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Unpack

from resilient_routing import _validate
from resilient_routing._callables import spelled_out

from ._policy import (
    ADMITTED,
    CLEAN,
    REFUSED,
    CooldownPolicy,
    PolicyOptions,
    Standing,
    policy_of,
    policy_parameters,
)

if TYPE_CHECKING:
    from ._state import ProviderState

__all__ = ["InMemoryCooldownTracker", "names_with_state"]

#: How many of the least recently failed providers eviction looks at for one not cooling.
_EVICTION_SCAN = 32


class InMemoryCooldownTracker:
    """Cooldown state kept in this process: thread-safe, allocation-free on the happy path.

    ``failure_threshold`` consecutive failures of a provider start a cooldown of ``cooldown``
    seconds. When the provider reaches the threshold again with no success since its previous
    cooldown, the next cooldown lasts ``growth`` times longer, up to ``max_cooldown``; a success
    brings it back to ``cooldown``. A failure whose exception carries a server's Retry-After
    (a ``retry_after`` attribute, or a ``Retry-After`` / ``retry-after-ms`` header on
    ``exc.response`` or ``exc.headers``) starts a cooldown of that length at once, capped at
    ``max_cooldown``; during a cooldown such a failure may lengthen it, never shorten it.
    With ``half_open=True`` a provider whose cooldown ended is tried by one probe at a time
    (see :class:`~resilient_routing.cooldown.CooldownPolicy`).

    Memory is bounded: the tracker keeps state only for providers that failed since their last
    success, at most ``max_entries`` of them. To make room it forgets the least recently
    failed provider that is not cooling down, being probed nor due for its half-open probe
    (looking at the 32 least recently failed), so a flood of failures of other names does not
    lift a cooldown in force nor let calls past a probe.

    Args:
        failure_threshold: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        cooldown: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        max_cooldown: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        growth: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        backoff: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        clock: monotonic seconds; inject ``resilient_routing.testing.FakeClock`` in tests.
        wall_clock: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        max_entries: the most providers whose state is kept at once. Default 10,000.
        half_open: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        probe_timeout: see :class:`~resilient_routing.cooldown.CooldownPolicy`.
        policy: a :class:`~resilient_routing.cooldown.CooldownPolicy` instead of the options
            it is made of (``failure_threshold`` to ``probe_timeout``), to share one between
            trackers.
    """

    __slots__ = ("_clock", "_lock", "_max_entries", "_resting", "_state", "policy")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
        policy: CooldownPolicy | None = None,
        **options: Unpack[PolicyOptions],
    ) -> None:
        self.policy = policy_of(policy, "InMemoryCooldownTracker", options)
        self._clock = _validate.callable_("clock", clock, "a callable returning seconds", args=0)
        self._max_entries = _validate.count("max_entries", max_entries)
        self._state: OrderedDict[str, Standing] = OrderedDict()
        #: The providers with failures but no cooldown since their last success, least
        #: recently failed first: at rest whenever asked, the first to make room.
        self._resting: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        p = self.policy
        return (
            f"InMemoryCooldownTracker(failure_threshold={p.failure_threshold}, "
            f"cooldown={p.cooldown}, max_cooldown={p.max_cooldown}, growth={p.growth})"
        )

    def is_available(self, name: str) -> bool:
        """Return True when ``name`` is not cooling down now.

        Half-open (``half_open=True``), the caller that finds a cooldown over claims the probe;
        the others get False until its outcome is recorded or ``probe_timeout`` passes.
        """
        return self.admit(name) != REFUSED

    def admit(self, name: str) -> int:
        """Return :meth:`is_available` as ``REFUSED`` (0), ``ADMITTED`` (1) or ``PROBE`` (2).

        ``PROBE``: admitted as the half-open probe (the other callers wait for its outcome).
        """
        standing = self._state.get(name)
        if standing is None:
            return ADMITTED
        now = self._clock()
        if standing.until > now:
            return REFUSED
        if not self.policy.half_open:
            return ADMITTED
        with self._lock:  # one caller claims the probe
            standing = self._state.get(name)
            if standing is None:
                return ADMITTED
            admitted, claimed = self.policy.admits(standing, now)
            if claimed is not None:
                self._state[name] = claimed
            return admitted

    def cooldown_remaining(self, name: str) -> float:
        """Return the seconds left in the cooldown of ``name``, ``0.0`` when available.

        Half-open, while another caller's probe is out: the rest of its claim.
        """
        standing = self._state.get(name)
        if standing is None:
            return 0.0
        return self.policy.remaining(standing, self._clock())

    def record_failure(self, name: str, exc: BaseException) -> bool:
        """Count a failure of ``name``; return True iff this failure started a cooldown."""
        hinted = self.policy.hinted(exc)
        with self._lock:
            now = self._clock()
            state = self._state
            standing = state.get(name)
            if standing is None:
                if len(state) >= self._max_entries:
                    self._evict(now)
                standing = CLEAN
            else:
                # Most recently failed last: eviction takes the least recently failed first.
                state.move_to_end(name)
            standing, started = self.policy.failed(standing, now, hinted)
            state[name] = standing
            if standing.until == -math.inf:
                self._resting[name] = None
                self._resting.move_to_end(name)
            else:
                self._resting.pop(name, None)
            return started

    def _evict(self, now: float) -> None:
        """Forget one provider to make room: the least recently failed one at rest.

        At rest: a caller would be let through without a trace (not cooling down, no probe
        out, none due), so forgetting it changes nothing a caller sees. Among the
        ``_EVICTION_SCAN`` least recently failed (a bounded look, so that a full tracker stays
        fast); else the least recently failed of those with no cooldown since their last
        success (kept apart, found at once); else the least recently failed goes, cooling down
        or not: the bound holds.
        """
        state = self._state
        admits = self.policy.admits
        for name, standing in itertools.islice(state.items(), _EVICTION_SCAN):
            # A flood of failures fills the tracker with cooldowns: those are passed over
            # without a call (the policy's first answer for them is REFUSED anyway).
            if standing.until <= now and admits(standing, now)[0] == ADMITTED:
                del state[name]
                self._resting.pop(name, None)
                return
        if self._resting:  # newer than all those, at rest still
            del state[self._resting.popitem(last=False)[0]]
            return
        state.popitem(last=False)

    def record_success(self, name: str) -> None:
        """Count a success of ``name``: failures and cooldown growth start again from zero."""
        if name in self._state:
            with self._lock:
                self._state.pop(name, None)
                self._resting.pop(name, None)

    def reset(self, name: str | None = None) -> None:
        """Forget the state of ``name``, or of every provider when ``name`` is None."""
        with self._lock:
            if name is None:
                self._state.clear()
                self._resting.clear()
            else:
                self._state.pop(name, None)
                self._resting.pop(name, None)

    def states(self) -> list[ProviderState]:
        """Return every provider the tracker remembers, sorted by name."""
        from ._state import ProviderState

        now = self._clock()
        with self._lock:
            return [
                ProviderState(
                    n, s.failures, s.level, max(0.0, s.until - now), max(0.0, s.probe - now)
                )
                for n, s in sorted(self._state.items())
            ]

    def cooldowns(self) -> dict[str, float]:
        """Return the providers cooling down now, with the seconds left for each."""
        now = self._clock()
        with self._lock:
            return {n: s.until - now for n, s in self._state.items() if s.until > now}


# The methods names_with_state() stands for, as defined here (a patched class no longer
# matches).
_ORIGINAL = {
    "is_available": InMemoryCooldownTracker.is_available,
    "admit": InMemoryCooldownTracker.admit,
    "record_success": InMemoryCooldownTracker.record_success,
}


def names_with_state(tracker: object) -> Container[str] | None:
    """Return the names an in-memory tracker holds state for, when they tell the whole story.

    Any other name is available and its success has nothing to clear, so the routing core
    neither asks about it nor records its success: on a routed call whose provider answers,
    that is most of the tracker's cost. Only for an InMemoryCooldownTracker (or subclass)
    whose ``is_available``, ``admit`` and ``record_success`` are the ones defined here, neither
    overridden, patched on the class, nor replaced on the instance (read when the routing
    first reads the tracker: at decoration for one given to ``routed``, at the first call
    for the global one); None otherwise: every name is asked about.
    """
    if not isinstance(tracker, InMemoryCooldownTracker):
        return None
    cls = type(tracker)
    own = getattr(tracker, "__dict__", {})
    for name, method in _ORIGINAL.items():
        if getattr(cls, name) is not method or name in own:
            return None
    return tracker._state


spelled_out(InMemoryCooldownTracker, policy_parameters())
