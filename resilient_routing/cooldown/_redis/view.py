"""A process's local picture of the shared cooldown state, kept current by the listener.

No I/O here: the listener (``listener.py``) and the trackers' replies feed it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Final

from .client import text

__all__ = ["View", "family_of", "parse_snapshot"]

#: In polling mode, a read of a provider found clean lets its success skip Redis this long.
_CHECKED_FOR: Final = 1.0
#: Beyond this many providers the local view forgets those with nothing left to remember.
_MAX_LOCAL: Final = 10_000


class View:
    """This process's picture of the shared state, kept current by the events channel.

    Every update carries the sequence number of the state it describes; an update older than
    what is known of that provider (or than the last full reload) is ignored, so the order in
    which replies and events reach the process does not matter.

    Bounded: it holds at most ``_MAX_LOCAL`` providers. Past that, each update forgets one,
    in constant time: the least recently updated provider with nothing in Redis, else the
    least recently updated of all. Once it has forgotten a provider with state in Redis it is
    *incomplete*: a provider it does not hold is no longer presumed clean (its check asks
    Redis) until a full reload or a reset of everything.
    """

    __slots__ = (
        "__weakref__",
        "_clean",
        "_held",
        "checked",
        "clock",
        "deadlines",
        "dirty",
        "family",
        "floor",
        "highest",
        "incomplete",
        "live",
        "lock",
        "ready",
        "seqs",
        "session_high",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.live = False
        self.floor = 0
        #: The views of this process's other trackers on the same server and prefix.
        self.family: weakref.WeakSet[View] = weakref.WeakSet()
        self.clock: Callable[[], float] = time.monotonic
        #: The newest state heard of, and what it was when the listener's session began.
        self.highest = self.session_high = 0
        self.incomplete = False
        self.deadlines: dict[str, float] = {}
        self.dirty: set[str] = set()
        self.seqs: dict[str, int] = {}
        # The providers held, least recently updated first: all of them, and the clean ones.
        self._held: OrderedDict[str, None] = OrderedDict()
        self._clean: OrderedDict[str, None] = OrderedDict()
        self.checked: OrderedDict[str, float] = OrderedDict()

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.live = False

    def set_live(self, live: bool) -> None:
        self.live = live
        if live:
            self.ready.set()
        else:
            self.ready.clear()

    def remaining(self, name: str, now: float) -> float | None:
        """Return the seconds left in the cooldown of ``name``; None when the view cannot tell."""
        deadline = self.deadlines.get(name)
        if deadline is None:
            return None if self.incomplete and name not in self.seqs else 0.0
        return deadline - now if deadline > now else 0.0

    def pending(self, name: str, now: float) -> bool:
        """Whether a cooldown (or a probe's claim) of ``name`` is over, with no news since.

        Half-open trackers claim a probe on the server before calling such a provider.
        """
        deadline = self.deadlines.get(name)
        return deadline is not None and deadline <= now

    def apply(
        self,
        name: str,
        seq: int,
        dirty: bool,
        remaining: float,
        now: float,
        cooled: bool = False,
    ) -> None:
        """Record the state of ``name`` as of ``seq``, unless something newer is known.

        ``cooled``: a cooldown started since its last success, over when ``remaining`` is not
        positive (the deadline is kept: :meth:`pending`).
        """
        with self.lock:
            if seq <= self.floor or seq <= self.seqs.get(name, 0):
                return
            deadline = now + remaining if remaining > 0 or cooled else None
            self._hold(name, seq, dirty, deadline)

    def _hold(self, name: str, seq: int, dirty: bool, deadline: float | None) -> None:
        self.seqs[name] = seq
        self.highest = max(self.highest, seq)
        self._held[name] = None
        self._held.move_to_end(name)
        if deadline is not None:
            self.deadlines[name] = deadline
        else:
            self.deadlines.pop(name, None)
        if dirty:
            self.dirty.add(name)
        else:
            self.dirty.discard(name)
        if dirty or deadline is not None:
            self._clean.pop(name, None)
        else:
            self._clean[name] = None
            self._clean.move_to_end(name)
        if len(self.seqs) > _MAX_LOCAL:
            self._forget_one()

    def _forget_one(self) -> None:
        if self._clean:
            name, _ = self._clean.popitem(last=False)
            del self._held[name]
        else:
            name, _ = self._held.popitem(last=False)
            self.incomplete = True
        del self.seqs[name]
        self.deadlines.pop(name, None)
        self.dirty.discard(name)

    def _reset(self, floor: int) -> None:
        self.deadlines, self.dirty, self.seqs, self.floor = {}, set(), {}, floor
        self.highest = floor
        self._held.clear()
        self._clean.clear()
        self.checked.clear()
        self.incomplete = False

    def join(self, family: weakref.WeakSet[View], clock: Callable[[], float]) -> None:
        """Join the views of the trackers of this process on the same server and prefix.

        ``clock``: the tracker's, which the view's deadlines are on.
        """
        self.clock = clock
        with _families_lock:
            family.add(self)
            self.family = family

    def tell(self, name: str, seq: int, dirty: bool, remaining: float, now: float) -> None:
        """Apply what a reply of this tracker's taught, here and in the family's other views.

        Another tracker of the process then sees it at once, not when the event comes back.
        """
        self.apply(name, seq, dirty, remaining, now)
        for view in self._relatives():
            view.apply(name, seq, dirty, remaining, view.clock())

    def tell_cleared(self, seq: int) -> None:
        """:meth:`clear_all`, here and in the family's other views."""
        self.clear_all(seq)
        for view in self._relatives():
            view.clear_all(seq)

    def _relatives(self) -> list[View]:
        with _families_lock:
            return [view for view in self.family if view is not self]

    def clear_all(self, seq: int) -> None:
        """Every provider was reset as of ``seq`` (what is newer stays)."""
        with self.lock:
            if seq <= self.floor:
                return
            newer = [(n, s) for n, s in self.seqs.items() if s > seq]
            kept = [(n, s, n in self.dirty, self.deadlines.get(n)) for n, s in newer]
            self._reset(seq)
            for name, s, dirty, deadline in kept:
                self._hold(name, s, dirty, deadline)

    def begin_session(self) -> None:
        """The listener subscribes anew: what it hears from now on is the server's present."""
        self.session_high = self.highest

    def load(self, seq: int, dirty: Iterable[str], cooling: dict[str, float], now: float) -> None:
        """Replace the view with a full reload as of ``seq`` (keeping anything newer)."""
        with self.lock:
            if seq < self.floor:
                # The server's sequence went back (its clock did): nothing local can be trusted.
                self._reset(self.floor)
            # Older than what was heard before this session: the server lost history
            # (restarted from a dump, a failover losing writes). Only what this session heard
            # can be newer than the reload.
            above = self.session_high if seq < self.session_high else seq
            newer = {n: s for n, s in self.seqs.items() if s > above}
            kept = [(n, s, n in self.dirty, self.deadlines.get(n)) for n, s in newer.items()]
            marked = set(dirty)
            self._reset(seq)
            # The dirty ones first, the cooling ones last: past the bound, the first go first.
            for name in marked - newer.keys() - cooling.keys():
                self._hold(name, seq, True, None)
            for name, left in cooling.items():
                if name not in newer:
                    self._hold(name, seq, name in marked, now + left)
            for name, s, was_dirty, deadline in kept:
                self._hold(name, s, was_dirty, deadline)

    def wipe(self) -> None:
        """Forget everything (the server's sequence went back): not live until reloaded.

        Meanwhile checks ask Redis: an empty view would answer "available" for all.
        """
        with self.lock:
            self._reset(0)
            self.set_live(False)

    def note_checked(self, name: str) -> None:
        """``name`` was just read clean from Redis (polling mode)."""
        checked = self.checked
        checked[name] = time.monotonic()
        checked.move_to_end(name)
        if len(checked) > _MAX_LOCAL:
            checked.popitem(last=False)

    def can_skip_success(self, name: str) -> bool:
        """Whether a success of ``name`` has nothing to clear in Redis, as far as is known."""
        if name in self.dirty:
            return False
        if self.live and not (self.incomplete and name not in self.seqs):
            return True
        checked = self.checked.get(name)
        return checked is not None and time.monotonic() - checked < _CHECKED_FOR


#: The views of each (server, prefix) in this process, held weakly: a family lives as long as
#: one of its views (each holds it), a view as long as its tracker.
_families: weakref.WeakValueDictionary[tuple[object, ...], weakref.WeakSet[View]] = (
    weakref.WeakValueDictionary()
)
_families_lock = threading.Lock()


def family_of(key: tuple[object, ...] | None) -> weakref.WeakSet[View]:
    """Return the family of views of ``key`` (a new one, alone, when ``key`` is None)."""
    if key is None:
        return weakref.WeakSet()
    with _families_lock:
        family = _families.get(key)
        if family is None:
            family = _families[key] = weakref.WeakSet()
        return family


def parse_snapshot(reply: Any) -> tuple[int, list[str], dict[str, float]]:
    seq, names, flat = reply
    cooling = {text(flat[i]): int(flat[i + 1]) / 1000.0 for i in range(0, len(flat), 2)}
    return int(seq), [text(n) for n in names], cooling
