"""The per-item cost of a routed stream, against the bare generator it routes.

Each row's "call" is one item: a batch of n consumes one stream of n items (the routing to the
first item is amortized over them). Two kinds of items: trivial ones (the generator's own cost
is all there is: the harshest ratio) and chunks decoded from JSON like an SDK's stream does
(openai parses each server-sent event; its pydantic models cost more still).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from time import perf_counter_ns
from typing import Any

from resilient_routing import InMemoryCooldownTracker, routed
from resilient_routing.events import RoutingEvent

from .harness import Batch, BatchFactory, Case, Check

P2 = ("a", "b")
CHUNK = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": " token"}, "finish_reason": None}],
    }
)

BARE_ITEMS = "stream: bare generator, per item"
ROUTED_ITEMS = "stream: routed generator, per item"
BARE_CHUNKS = "stream: bare generator decoding JSON chunks, per item"
ROUTED_CHUNKS = "stream: routed, decoding JSON chunks, per item"
ABARE_ITEMS = "async stream: bare async generator, per item"
AROUTED_ITEMS = "async stream: routed async generator, per item"
ABARE_CHUNKS = "async stream: bare, decoding JSON chunks, per item"
AROUTED_CHUNKS = "async stream: routed, decoding JSON chunks, per item"


def items(provider: str, n: int) -> Iterator[int]:
    yield from range(n)


def chunks(provider: str, n: int) -> Iterator[Any]:
    loads = json.loads
    for _ in range(n):
        yield loads(CHUNK)


async def aitems(provider: str, n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def achunks(provider: str, n: int) -> AsyncIterator[Any]:
    loads = json.loads
    for _ in range(n):
        yield loads(CHUNK)


class _Counting:
    def __init__(self) -> None:
        self.items = 0

    def on_event(self, event: RoutingEvent) -> None:
        self.items = getattr(event, "items", self.items)


def _consume(make: Callable[[str, int], Iterator[Any]], provider: str) -> BatchFactory:
    def batch(n: int) -> int:
        start = perf_counter_ns()
        for _ in make(provider, n):
            pass
        return perf_counter_ns() - start

    return lambda loop: batch


def _consume_routed(make: Callable[[int], Iterator[Any]]) -> BatchFactory:
    def batch(n: int) -> int:
        start = perf_counter_ns()
        for _ in make(n):
            pass
        return perf_counter_ns() - start

    return lambda loop: batch


def _aconsume(make: Callable[..., AsyncIterator[Any]], *args: Any) -> BatchFactory:
    async def timed(n: int) -> int:
        start = perf_counter_ns()
        async for _ in make(*args, n):
            pass
        return perf_counter_ns() - start

    def factory(loop: Any) -> Batch:
        return lambda n: loop.run_until_complete(timed(n))

    return factory


def _whole(stream: Callable[[int], Iterator[Any]]) -> Check:
    def check() -> None:
        got = list(stream(5))
        if len(got) != 5:
            raise AssertionError(f"expected 5 items, got {len(got)}")

    return check


def stream_cases() -> list[Case]:
    """The streaming rows: sync and async, trivial items and decoded chunks."""
    s = "streams: ns per item (a batch of n is one stream of n items)"
    tracker = InMemoryCooldownTracker()
    routed_items = routed(providers=P2, cooldown=tracker)(items)
    routed_chunks = routed(providers=P2, cooldown=tracker)(chunks)
    arouted_items = routed(providers=P2, cooldown=tracker)(aitems)
    arouted_chunks = routed(providers=P2, cooldown=tracker)(achunks)
    aidle = routed(providers=P2, cooldown=tracker, idle_timeout=60.0)(aitems)
    counted = routed(providers=P2, cooldown=tracker, listeners=[_Counting()])(items)
    return [
        Case(BARE_ITEMS, s, "sync", _consume(items, "a"), "yield from range(n)"),
        Case(
            ROUTED_ITEMS,
            s,
            "sync",
            _consume_routed(routed_items),
            "",
            check=_whole(routed_items),
            versus=(("the bare generator", BARE_ITEMS),),
        ),
        Case(
            "stream: routed generator, a listener counting items, per item",
            s,
            "sync",
            _consume_routed(counted),
            "listeners are told how many items a stream gave",
            versus=(("the bare generator", BARE_ITEMS),),
        ),
        Case(BARE_CHUNKS, s, "sync", _consume(chunks, "a"), "json.loads of a chat chunk"),
        Case(
            ROUTED_CHUNKS,
            s,
            "sync",
            _consume_routed(routed_chunks),
            "",
            versus=(("the bare generator", BARE_CHUNKS),),
        ),
        Case(ABARE_ITEMS, s, "async", _aconsume(aitems, "a"), "async for over range(n)"),
        Case(
            AROUTED_ITEMS,
            s,
            "async",
            _aconsume(arouted_items),
            "",
            versus=(("the bare async generator", ABARE_ITEMS),),
        ),
        Case(
            "async stream: routed, idle_timeout, per item",
            s,
            "async",
            _aconsume(aidle),
            "an asyncio timeout around every item",
            versus=(("the bare async generator", ABARE_ITEMS),),
        ),
        Case(ABARE_CHUNKS, s, "async", _aconsume(achunks, "a"), "json.loads of a chat chunk"),
        Case(
            AROUTED_CHUNKS,
            s,
            "async",
            _aconsume(arouted_chunks),
            "",
            versus=(("the bare async generator", ABARE_CHUNKS),),
        ),
    ]
