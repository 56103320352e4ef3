"""A process's local picture of the shared cooldown state, kept current by the listener.

No I/O here: the listener (``listener.py``) and the trackers' replies feed it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from .client import text

__all__ = ["View", "parse_snapshot"]

#: In polling mode, a read of a provider found clean lets its success skip Redis this long.
_CHECKED_FOR: Final = 1.0
#: Beyond this many providers the local view forgets those with nothing left to remember.
_MAX_LOCAL: Final = 10_000


class View:
    """This process's picture of the shared state, kept current by the events channel.

    Every update carries the sequence number of the state it describes; an update older than
    what is known of that provider (or than the last full reload) is ignored, so the order in
    which replies and events reach the process does not matter.
    """

    __slots__ = ("checked", "deadlines", "dirty", "floor", "live", "lock", "ready", "seqs")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.live = False
        self.floor = 0
        self.deadlines: dict[str, float] = {}
        self.dirty: set[str] = set()
        self.seqs: dict[str, int] = {}
        self.checked: dict[str, float] = {}

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

    def remaining(self, name: str, now: float) -> float:
        deadline = self.deadlines.get(name)
        if deadline is None or deadline <= now:
            return 0.0
        return deadline - now

    def apply(self, name: str, seq: int, dirty: bool, remaining: float, now: float) -> None:
        """Record the state of ``name`` as of ``seq``, unless something newer is known."""
        with self.lock:
            if seq <= self.floor or seq <= self.seqs.get(name, 0):
                return
            self.seqs[name] = seq
            if remaining > 0:
                self.deadlines[name] = now + remaining
            else:
                self.deadlines.pop(name, None)
            if dirty:
                self.dirty.add(name)
            else:
                self.dirty.discard(name)
            if len(self.seqs) > _MAX_LOCAL:
                self._forget_clean(now)

    def _forget_clean(self, now: float) -> None:
        for name in [n for n in self.seqs if n not in self.dirty]:
            del self.seqs[name]
            self.deadlines.pop(name, None)
        self.checked.clear()

    def clear_all(self, seq: int) -> None:
        with self.lock:
            if seq <= self.floor:
                return
            self.floor = seq
            newer = {n: s for n, s in self.seqs.items() if s > seq}
            self.deadlines = {n: d for n, d in self.deadlines.items() if n in newer}
            self.dirty = {n for n in self.dirty if n in newer}
            self.seqs = newer

    def load(self, seq: int, dirty: Iterable[str], cooling: dict[str, float], now: float) -> None:
        """Replace the view with a full reload as of ``seq`` (keeping anything newer)."""
        with self.lock:
            if seq < self.floor:
                # The server's sequence went back (its clock did): nothing local can be trusted.
                self.seqs.clear()
            newer = {n: s for n, s in self.seqs.items() if s > seq}
            deadlines = {n: now + r for n, r in cooling.items() if n not in newer}
            deadlines.update({n: d for n, d in self.deadlines.items() if n in newer})
            marked = {n for n in dirty if n not in newer}
            marked.update(n for n in self.dirty if n in newer)
            self.deadlines, self.dirty, self.seqs, self.floor = deadlines, marked, newer, seq
            self.checked.clear()

    def wipe(self) -> None:
        with self.lock:
            self.deadlines, self.dirty, self.seqs, self.floor = {}, set(), {}, 0
            self.checked.clear()

    def note_checked(self, name: str) -> None:
        if len(self.checked) > _MAX_LOCAL:
            self.checked.clear()
        self.checked[name] = time.monotonic()

    def can_skip_success(self, name: str) -> bool:
        """Whether a success of ``name`` has nothing to clear in Redis, as far as is known."""
        if name in self.dirty:
            return False
        if self.live:
            return True
        checked = self.checked.get(name)
        return checked is not None and time.monotonic() - checked < _CHECKED_FOR


def parse_snapshot(reply: Any) -> tuple[int, list[str], dict[str, float]]:
    seq, names, flat = reply
    cooling = {text(flat[i]): int(flat[i + 1]) / 1000.0 for i in range(0, len(flat), 2)}
    return int(seq), [text(n) for n in names], cooling
