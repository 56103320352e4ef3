"""The checks of every option the library takes: one place, one wording.

Each returns the value in the form the library keeps (a float, a frozenset...) or raises
:class:`InvalidConfigError` naming the option, what it got and what it expected.
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
import types
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from ._exceptions import InvalidConfigError
from .cooldown._protocol import AsyncCooldownTracker, CooldownTracker

__all__ = [
    "UNSET",
    "AnyTracker",
    "Unset",
    "callable_",
    "count",
    "exception_filter",
    "flag",
    "listeners",
    "logger",
    "names",
    "number",
    "seconds",
    "text",
    "tracker",
]

T = TypeVar("T")


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: Tells "option omitted" apart from ``None`` (which means "no cooldown tracking").
UNSET: Final = Unset.UNSET

AnyTracker = CooldownTracker | AsyncCooldownTracker

#: What ``fallback_on=`` and ``cooldown_on=`` accept.
ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[Exception], bool]
)


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def number(
    option: str,
    value: object,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = False,
    unit: str = "",
) -> float:
    """Return ``value`` as a float if it is a finite number in the range; else raise.

    Args:
        option: the option's name, for the message.
        value: what was given.
        low: the smallest value allowed.
        high: the largest value allowed.
        low_open: ``low`` itself is not allowed.
        unit: what the number counts, for the message (" of seconds", " (a factor)").
    """
    if not _is_number(value):
        raise InvalidConfigError(f"{option} must be a finite number{unit}, got {value!r}")
    if not ((value > low if low_open else value >= low) and value <= high):  # type: ignore[operator]
        if high != math.inf:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        else:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise InvalidConfigError(f"{option} must be {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def seconds(option: str, value: object, *, zero: bool = False) -> float:
    """Return a duration in seconds: a finite number > 0 (>= 0 with ``zero``)."""
    if not _is_number(value) or value < 0 or (value == 0 and not zero):  # type: ignore[operator]
        bound = ">= 0" if zero else "> 0"
        raise InvalidConfigError(f"{option} must be a number of seconds {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def optional_seconds(option: str, value: object) -> float | None:
    """Return None, or a duration in seconds > 0."""
    return None if value is None else seconds(option, value)


def count(option: str, value: object, *, low: int = 1) -> int:
    """Return an int >= ``low`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidConfigError(f"{option} must be an int >= {low}, got {value!r}")
    return value


def optional_count(option: str, value: object) -> int | None:
    """Return None, or an int >= 1."""
    return None if value is None else count(option, value)


def flag(option: str, value: object) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise InvalidConfigError(f"{option} must be a bool, got {value!r}")
    return value


def text(option: str, value: object) -> str:
    """Return ``value`` if it is a non-empty str."""
    if not isinstance(value, str) or not value:
        raise InvalidConfigError(f"{option} must be a non-empty str, got {value!r}")
    return value


def callable_(option: str, value: T, expected: str, args: int | None = None) -> T:
    """Return ``value`` if it is callable; ``expected`` says what it should be.

    ``args``: it must take that many positional arguments, when its signature tells.
    """
    if not callable(value):
        raise InvalidConfigError(f"{option} must be {expected}, got {value!r}")
    if args is not None and _refuses(value, args):
        raise InvalidConfigError(
            f"{option} must be {expected}, got {value!r}, which takes {_signature(value)}"
        )
    return value


def _refuses(fn: Callable[..., Any], args: int) -> bool:
    """Whether the signature of ``fn`` says it cannot be called with ``args`` arguments."""
    if type(fn) is types.FunctionType:  # a def or a lambda: its code tells, cheaply
        code = fn.__code__
        required = code.co_argcount - len(fn.__defaults__ or ())
        keyword_only = code.co_kwonlyargcount - len(fn.__kwdefaults__ or {})
        extra = args > code.co_argcount and not code.co_flags & inspect.CO_VARARGS
        return args < required or keyword_only > 0 or extra
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False  # no signature to read (some builtins): trust it
    try:
        signature.bind(*range(args))
    except TypeError:
        return True
    return False


def _signature(fn: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):  # pragma: no cover - _refuses read it
        return "other arguments"


def names(option: str, value: object) -> frozenset[str]:
    """Return a collection of provider names as a frozenset.

    A bare str is refused: it would be read as its letters.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidConfigError(
            f"{option} must be a collection of provider names such as {{'laozhang'}}, got {value!r}"
        )
    items = tuple(value)
    bad = [n for n in items if not isinstance(n, str)]
    if bad:
        raise InvalidConfigError(f"{option} must hold provider names (str), got {bad[0]!r}")
    return frozenset(items)


def listeners(option: str, value: object) -> tuple[Any, ...]:
    """Return a collection of objects with an ``on_event`` method as a tuple, each once."""
    if hasattr(value, "on_event"):  # an EventRecorder is a list: taken as one, it hears nothing
        raise InvalidConfigError(
            f"{option} must be a list of listeners, got the listener {value!r} itself: "
            f"pass [{type(value).__name__ if isinstance(value, type) else 'it'}]"
        )
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
        raise InvalidConfigError(f"{option} must be a list of listeners, got {value!r}")
    result: list[Any] = []
    for listener in value:
        if isinstance(listener, type) or not callable(getattr(listener, "on_event", None)):
            kind = "the class " if isinstance(listener, type) else ""
            raise InvalidConfigError(
                f"{option} must hold listener objects with an on_event(event) method, "
                f"got {kind}{listener!r}"
            )
        if not any(listener is seen for seen in result):
            result.append(listener)
    return tuple(result)


def logger(option: str, value: object) -> logging.Logger:
    """Return ``value`` if it is a ``logging.Logger``."""
    if isinstance(value, logging.Logger):
        return value
    raise InvalidConfigError(f"{option} must be a logging.Logger, got {value!r}")


def exception_filter(option: str, value: object) -> Callable[[Exception], bool]:
    """Return ``fallback_on=`` / ``cooldown_on=`` as a predicate ``exc -> bool``.

    Exception types must be ones a routed call can catch: ``KeyboardInterrupt``,
    ``SystemExit``, ``GeneratorExit`` and ``asyncio.CancelledError`` always propagate, so
    naming one could never take effect.
    """
    if isinstance(value, type) and issubclass(value, BaseException):
        _catchable(option, (value,))
        cls = value
        return lambda exc: isinstance(exc, cls)
    if isinstance(value, tuple):
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in value):
            raise InvalidConfigError(
                f"{option} tuple must hold exception types only, got {value!r}"
            )
        _catchable(option, value)
        types = value
        return lambda exc: isinstance(exc, types)
    expected = "an exception type, a tuple of them or a predicate exc -> bool"
    if callable(value) and not isinstance(value, type):
        return callable_(option, value, expected, args=1)
    raise InvalidConfigError(f"{option} must be {expected}, got {value!r}")


def tracker(option: str, value: object) -> AnyTracker | None:
    """Return ``value`` if it is a cooldown tracker (sync or async) or None."""
    if isinstance(value, type):
        raise InvalidConfigError(
            f"{option} must be a tracker instance such as {value.__name__}(), got the class "
            f"{value!r}"
        )
    if value is None or isinstance(value, (CooldownTracker, AsyncCooldownTracker)):
        return value
    raise InvalidConfigError(
        f"{option} must be a CooldownTracker, an AsyncCooldownTracker or None, got {value!r}"
    )


def _catchable(option: str, types: tuple[type[BaseException], ...]) -> None:
    for cls in types:
        if not issubclass(cls, Exception) and cls is not BaseException:
            raise InvalidConfigError(
                f"{option} names {cls.__name__}, which is not an Exception: it always "
                "propagates unrecorded, so it could never fall over"
            )
