"""Process-wide configuration, read by routed functions at call time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from . import _validate
from ._validate import UNSET, AnyTracker, Unset
from .cooldown._memory import InMemoryCooldownTracker

if TYPE_CHECKING:
    from .events import Listener

__all__ = ["UNSET", "Config", "Unset", "configure", "get_config"]


class Config:
    """A snapshot of the global configuration (read-only).

    Attributes:
        cooldown: the tracker routed functions use when they name none (None: no tracking).
        exempt_providers: names never put into cooldown, unless a function names its own set.
        logger: the logger routed functions use when they name none.
        listeners: event listeners of every routed function (beside each one's own).
    """

    # A hand-written class rather than a frozen dataclass: making one costs ~2 ms at import,
    # a fifth of the package's import time. Every routed call reads these slots.
    __slots__ = ("cooldown", "exempt_providers", "listeners", "logger")

    if TYPE_CHECKING:  # read-only, for type checkers

        @property
        def cooldown(self) -> AnyTracker | None: ...
        @property
        def exempt_providers(self) -> frozenset[str]: ...
        @property
        def logger(self) -> logging.Logger: ...
        @property
        def listeners(self) -> tuple[Listener, ...]: ...

    def __init__(
        self,
        cooldown: AnyTracker | None,
        exempt_providers: frozenset[str],
        logger: logging.Logger,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        init = object.__setattr__
        init(self, "cooldown", cooldown)
        init(self, "exempt_providers", exempt_providers)
        init(self, "logger", logger)
        init(self, "listeners", listeners)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Config is read-only: change it with configure({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Config is read-only")

    __match_args__ = ("cooldown", "exempt_providers", "logger", "listeners")

    def _fields(self) -> tuple[Any, ...]:
        return (self.cooldown, self.exempt_providers, self.logger, self.listeners)

    def __reduce__(self) -> tuple[Any, ...]:
        # Copied and pickled through __init__ (assigning attributes is refused).
        return (type(self), self._fields())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Config(cooldown={self.cooldown!r}, exempt_providers={self.exempt_providers!r}, "
            f"logger={self.logger!r}, listeners={self.listeners!r})"
        )


_lock = threading.Lock()
_default_logger = logging.getLogger("resilient_routing")
# A library leaves output to the application: without this, logging's last-resort handler
# would print WARNINGs to stderr in applications that configured no logging.
_default_logger.addHandler(logging.NullHandler())
_current = Config(
    cooldown=InMemoryCooldownTracker(),
    exempt_providers=frozenset(),
    logger=_default_logger,
)


def current() -> Config:
    """Return the configuration in force (the hot path reads this)."""
    return _current


def configure(
    *,
    cooldown: AnyTracker | Literal[Unset.UNSET] | None = UNSET,
    exempt_providers: Iterable[str] | Literal[Unset.UNSET] = UNSET,
    logger: logging.Logger | Literal[Unset.UNSET] = UNSET,
    listeners: Iterable[Listener] | Literal[Unset.UNSET] = UNSET,
) -> Config:
    """Change the global configuration; options not given keep their value.

    Routed functions read it at call time, so it applies to functions decorated before.

    Args:
        cooldown: the global tracker (shared by every routed function that names none), or
            None to track no cooldowns by default.
        exempt_providers: names that never enter cooldown (their failures are not recorded).
        logger: the default logger of routed functions.
        listeners: event listeners of every routed function (``resilient_routing.events``).

    Returns:
        The new configuration.

    Raises:
        InvalidConfigError: an option has the wrong type; nothing is changed then.
    """
    global _current
    given = {
        "cooldown": (cooldown, _validate.tracker),
        "exempt_providers": (exempt_providers, _validate.names),
        "logger": (logger, _validate.logger),
        "listeners": (listeners, _validate.listeners),
    }
    with _lock:
        fields = dict(zip(Config.__match_args__, _current._fields(), strict=True))
        for name, (value, check) in given.items():
            if value is not UNSET:
                fields[name] = check(f"configure({name}=...)", value)
        new = _current = Config(**fields)
    return new


def get_config() -> Config:
    """Return the current global configuration."""
    return _current
