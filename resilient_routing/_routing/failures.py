"""How a failure is judged: the exception it is judged by, and whether it falls over."""

from __future__ import annotations

from collections.abc import Callable

import tenacity

from resilient_routing._exceptions import InvalidConfigError

__all__ = ["judge", "judged"]

# A configuration error fails the same everywhere (like a bad request), and so does a
# RecursionError (a bug in the calling code; falling over at every level of a runaway
# recursion would multiply the calls by the providers at each level): never fall over.
_NEVER_FALL_OVER = (InvalidConfigError, RecursionError)
# Failures that need a closer look than fallback_on: those above, and a tenacity.RetryError
# (judged by its last attempt's exception).
_UNUSUAL = (tenacity.RetryError, *_NEVER_FALL_OVER)
# The exception classes seen that are not _UNUSUAL: a set lookup costs a third of isinstance()
# over that tuple, on every failure. Bounded (it keeps the classes alive: a few made at run
# time are kept, not all); a class that isinstance() may see as another is never added.
_ORDINARY: set[type[BaseException]] = set()
_ORDINARY_MAX = 256


def judged(exc: Exception) -> Exception:
    """Return the exception a failure is judged by: a tenacity.RetryError's last one."""
    if isinstance(exc, tenacity.RetryError):
        last = exc.last_attempt
        if last.failed:
            inner = last.exception()
            if isinstance(inner, Exception):
                return inner
    return exc


def judge(
    fallback_on: Callable[[Exception], bool] | None, raised: Exception
) -> tuple[Exception, bool]:
    """Return the exception ``raised`` is judged by, and whether it falls over.

    ``fallback_on``: the route's predicate; None when every Exception falls over.
    """
    exc = raised
    kind = type(raised)
    try:
        seen = kind in _ORDINARY
    except TypeError:  # an unhashable class (its metaclass defines __eq__ alone)
        seen = False
    if not seen:
        if isinstance(raised, _UNUSUAL):
            exc = judged(raised)
            if isinstance(exc, _NEVER_FALL_OVER):
                return exc, False
        elif len(_ORDINARY) < _ORDINARY_MAX and _judged_by_its_type(kind):
            _ORDINARY.add(kind)
    return exc, fallback_on is None or fallback_on(exc)


def _judged_by_its_type(kind: type[BaseException]) -> bool:
    """Whether isinstance() judges every instance of ``kind`` by ``kind`` alone.

    Not when ``kind`` can't be hashed, nor when it (or a base) overrides ``__class__``: a
    proxy's instances may each claim another class.
    """
    try:
        hash(kind)
    except TypeError:
        return False
    return not any("__class__" in vars(base) for base in kind.__mro__ if base is not object)
