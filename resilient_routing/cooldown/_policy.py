"""When a provider's failures start a cooldown, and for how long: the rules every tracker keeps.

:meth:`CooldownPolicy.failed` is the whole rule of a failure, as a pure transition from one
:class:`Standing` to the next. The in-memory tracker applies it under a lock; the Redis Lua
script is its atomic mirror on the server, held to it by the tracker contract suite.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import Final, NamedTuple, TypedDict

import tenacity
from tenacity.wait import wait_base

from resilient_routing import _validate
from resilient_routing._exceptions import InvalidConfigError

from ._retry_after import retry_after_seconds

__all__ = [
    "ADMITTED",
    "CLEAN",
    "PROBE",
    "REFUSED",
    "CooldownPolicy",
    "PolicyOptions",
    "Standing",
    "policy_of",
]

#: Consecutive cooldowns after which the schedule stops growing on its own.
_MAX_LEVELS = 32


class Standing(NamedTuple):
    """What a tracker remembers of one provider between failures (immutable).

    Attributes:
        failures: consecutive failures counted toward the next cooldown.
        level: consecutive cooldowns without a success in between.
        until: when its cooldown ends (the tracker's clock); ``-inf`` when none started since
            its last success.
        probe: when the lease of its half-open probe ends; ``-inf`` when no probe is out.
    """

    failures: int = 0
    level: int = 0
    until: float = -math.inf
    probe: float = -math.inf


#: A provider with no failure since its last success.
CLEAN = Standing()

#: What the shipped trackers' ``admit(name)`` answers: the caller may not call the provider,
#: may, or may as its half-open probe (the others wait for its outcome).
REFUSED: Final = 0
ADMITTED: Final = 1
PROBE: Final = 2


class CooldownPolicy:
    """The rules every tracker applies; the trackers differ only in where they keep state.

    Every tracker takes these options, or a policy made of them (``policy=``).

    Args:
        failure_threshold: consecutive failures that start a cooldown (>= 1). Default 3.
        cooldown: seconds of the first cooldown. Default 30.
        max_cooldown: no cooldown lasts longer, whatever the growth or a server's Retry-After.
            Default 300.
        growth: each consecutive cooldown (the provider reached the threshold again without a
            success since its previous cooldown) lasts ``growth`` times longer (>= 1; 1
            disables growth). Default 2.
        backoff: a tenacity wait strategy giving the length of the N-th consecutive cooldown
            as its ``attempt_number``; replaces ``cooldown`` and ``growth`` when given
            (``tenacity.wait_random_exponential`` for jitter, say).
        wall_clock: Unix time, to read an HTTP-date ``Retry-After``. Default ``time.time``.
        half_open: recover through one probe: when a cooldown ends, the first caller to ask
            claims the *probe* (``is_available`` answers True) and every other is refused
            until its outcome is recorded (a success closes the provider for everyone, a
            failure starts the next, grown cooldown at once) or ``probe_timeout`` passes
            without one (then the next caller claims a new probe). Default False: when a
            cooldown ends, every caller may call the provider at once.
        probe_timeout: seconds a probe's claim lasts without an outcome: a little more than
            the longest call (the client's own timeout). Default 30.
    """

    __slots__ = (
        "_fixed",
        "backoff",
        "cooldown",
        "failure_threshold",
        "growth",
        "half_open",
        "max_cooldown",
        "probe_timeout",
        "wall_clock",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        growth: float = 2.0,
        backoff: wait_base | None = None,
        wall_clock: Callable[[], float] = time.time,
        half_open: bool = False,
        probe_timeout: float = 30.0,
    ) -> None:
        self.half_open = _validate.flag("half_open", half_open)
        self.probe_timeout = _validate.number(
            "probe_timeout", probe_timeout, low_open=True, unit=" of seconds"
        )
        self.failure_threshold = _validate.count("failure_threshold", failure_threshold)
        self.cooldown = _validate.number("cooldown", cooldown, low_open=True, unit=" of seconds")
        self.max_cooldown = _validate.number("max_cooldown", max_cooldown, unit=" of seconds")
        if self.max_cooldown < self.cooldown:
            raise InvalidConfigError(
                f"max_cooldown ({max_cooldown!r}) must be >= cooldown ({cooldown!r})"
            )
        self.growth = _validate.number("growth", growth, low=1.0, unit=" (a factor)")
        if backoff is not None:
            _validate.callable_("backoff", backoff, "a tenacity wait strategy (callable)", args=1)
        self.backoff: wait_base = backoff or tenacity.wait_exponential(
            multiplier=self.cooldown, exp_base=self.growth, max=self.max_cooldown
        )
        self.wall_clock = _validate.callable_(
            "wall_clock", wall_clock, "a callable returning Unix time", args=0
        )
        # The default schedule is deterministic: compute it once. A user's backoff may draw
        # random jitter, so it is asked every time.
        self._fixed: tuple[float, ...] | None = None
        if backoff is None:
            self._fixed = self.schedule()

    @property
    def custom_backoff(self) -> bool:
        """Whether the lengths come from a user's ``backoff`` (which may draw jitter)."""
        return self._fixed is None

    def cooldown_for(self, level: int) -> float:
        """Return the seconds of the ``level``-th consecutive cooldown (1-based), capped."""
        fixed = self._fixed
        if fixed is not None:
            return fixed[min(max(level, 1), len(fixed)) - 1]
        # The same table as schedule()'s, which the Redis script repeats the last entry of.
        return self._ask_backoff(min(level, _MAX_LEVELS))

    def _ask_backoff(self, level: int) -> float:
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, level)
        return max(0.0, min(float(self.backoff(state)), self.max_cooldown))

    def schedule(self) -> tuple[float, ...]:
        """Return the cooldown lengths for levels 1, 2, ...; the last one repeats from there.

        Backends that compute cooldowns server-side (Redis) take this table.
        """
        lengths: list[float] = []
        for level in range(1, _MAX_LEVELS + 1):
            lengths.append(self._ask_backoff(level))
            if lengths[-1] >= self.max_cooldown:
                break
        return tuple(lengths)

    def hinted(self, exc: BaseException) -> float | None:
        """Return the cooldown a server asked for through Retry-After, capped, if any."""
        seconds = retry_after_seconds(exc, self.wall_clock)
        return None if seconds is None else min(seconds, self.max_cooldown)

    def failed(self, standing: Standing, now: float, hinted: float | None) -> tuple[Standing, bool]:
        """Return a provider's standing after a failure at ``now``, and whether it began a cooldown.

        During a cooldown a failure starts no other one; a server's Retry-After (``hinted``
        seconds) may lengthen it, never shorten it. Otherwise the failure counts: a
        Retry-After starts a cooldown of that length at once, whatever the threshold; reaching
        ``failure_threshold`` starts the next consecutive cooldown (its length grows with its
        level). A cooldown that starts clears the count.

        Args:
            standing: what the tracker remembers of the provider.
            now: the time of the failure, on the tracker's clock.
            hinted: the capped Retry-After of the failure (:meth:`hinted`), if any.
        """
        failures, level, until, probe = standing
        if now < until:
            if hinted is not None and now + hinted > until:
                return Standing(failures, level, now + hinted), False
            return standing, False
        if hinted is not None:
            return Standing(0, level, now + hinted), True
        failures += 1
        # Half-open (a cooldown ended, no success since): one failure is enough.
        if failures >= self.failure_threshold or (self.half_open and until != -math.inf):
            level += 1
            return Standing(0, level, now + self.cooldown_for(level)), True
        return Standing(failures, level, until, probe), False

    def admits(self, standing: Standing, now: float) -> tuple[int, Standing | None]:
        """Return whether a caller may call the provider at ``now`` (``REFUSED``, ``ADMITTED``).

        Half-open, a caller that finds the cooldown over and no probe out claims the probe
        (``PROBE``): the standing to keep then comes second (None: nothing changes).
        """
        until = standing.until
        if now < until:
            return REFUSED, None
        if not self.half_open or until == -math.inf:
            return ADMITTED, None
        if now < standing.probe:
            return REFUSED, None  # another caller's probe is out
        return PROBE, standing._replace(probe=now + self.probe_timeout)

    def remaining(self, standing: Standing, now: float) -> float:
        """Return the seconds until a caller may call the provider (0.0: now).

        A cooldown's rest, or half-open, the rest of another caller's probe.
        """
        left = standing.until - now
        if left > 0:
            return left
        if self.half_open and standing.until != -math.inf and standing.probe > now:
            return standing.probe - now
        return 0.0


class PolicyOptions(TypedDict, total=False):
    """The keyword options every tracker passes on to its :class:`CooldownPolicy`."""

    failure_threshold: int
    cooldown: float
    max_cooldown: float
    growth: float
    backoff: wait_base | None
    wall_clock: Callable[[], float]
    half_open: bool
    probe_timeout: float


def policy_parameters() -> list[inspect.Parameter]:
    """The options of a policy as keyword-only parameters (for the trackers' signatures)."""
    return list(inspect.signature(CooldownPolicy).parameters.values())


def policy_of(policy: CooldownPolicy | None, owner: str, options: PolicyOptions) -> CooldownPolicy:
    """Return ``policy``, or the policy the keyword ``options`` make.

    Raises:
        TypeError: an option that is none of the policy's (a misspelt name).
        InvalidConfigError: both a policy and policy options were given (one would silently
            win), or ``policy`` is not a CooldownPolicy.
    """
    unknown = sorted(set(options) - PolicyOptions.__annotations__.keys())
    if unknown:
        # What Python would say, naming the tracker rather than the policy it hands them to.
        import difflib  # only for a mistake: not worth its import time otherwise

        close = difflib.get_close_matches(unknown[0], PolicyOptions.__annotations__, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}{hint}")
    if policy is None:
        return CooldownPolicy(**options)
    if not isinstance(policy, CooldownPolicy):
        raise InvalidConfigError(f"{owner}: policy must be a CooldownPolicy, got {policy!r}")
    if options:
        given = ", ".join(f"{name}=" for name in sorted(options))
        raise InvalidConfigError(
            f"{owner}: pass either policy= or the options it is made of, not both (got policy= "
            f"and {given})"
        )
    return policy
