"""What a run does: the settings shared by servers and clients, and the fault scenarios.

Every time is in seconds from the run's start (``t0``, a wall-clock instant the orchestrator
hands to the servers and to every client process). A fault hits one provider, by its index
in the providers' order (0 is the primary), from ``start`` to ``end``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

FaultKind = Literal["down", "500", "429", "slow", "hang", "cut"]

#: What each fault does at the server, for the report.
FAULT_KINDS: dict[str, str] = {
    "down": "every connection reset at once, before any response (hard down)",
    "500": "HTTP 500 with an OpenAI-style error body",
    "429": "HTTP 429 with Retry-After (seconds)",
    "slow": "the answer comes after a latency spike (still under the client timeout)",
    "hang": "no answer at all until well past the client timeout",
    "cut": "a stream cut (connection reset) after a few chunks",
}

PROVIDERS: tuple[str, ...] = ("primary", "secondary", "tertiary")


@dataclass(frozen=True)
class Settings:
    """The knobs of a run, the same for every contender."""

    duration: float = 20.0
    #: calls per second, all client processes together (open loop, fixed rate)
    rate: float = 25.0
    #: most calls in flight, all client processes together
    concurrency: int = 64
    processes: int = 1
    #: the client's timeout for one provider call (every contender)
    attempt_timeout: float = 2.0
    #: resilient_routing's timeout= for a whole routed call
    call_timeout: float = 6.0
    #: the load generator's own bound on one call, whatever the contender does
    deadline: float = 10.0
    #: healthy server latency (non-streaming answer; jittered by +-40%)
    base_latency: float = 0.05
    stream_chunks: int = 8
    chunk_interval: float = 0.01
    #: the latency spike of a "slow" fault
    spike: float = 1.2
    #: how long a "hang" holds the request (bounded)
    hang: float = 10.0
    #: the Retry-After of a "429" fault
    retry_after: int = 3
    #: chunks sent before a "cut"
    cut_after: int = 3
    #: a provider counts as diverted from once it gets no call for this long
    divert_gap: float = 0.5
    #: warm-up calls per client before the run (imports, connections)
    warmup: int = 2
    #: resilient_routing's tracker options: short cooldowns are safe with half-open probes
    #: (one call per recovery, however many callers), so the provider comes back soon after.
    rr_tracker: dict[str, Any] = field(
        default_factory=lambda: {
            "failure_threshold": 3,
            "cooldown": 2.0,
            "growth": 1.5,
            "max_cooldown": 30.0,
            "half_open": True,
            "probe_timeout": 3.0,
        }
    )
    #: resilient_routing's Hedged(delay=): a second provider starts beside a slow first one
    rr_hedge_delay: float = 0.3
    #: resilient_routing's slow_call=: an answer (or a first chunk) slower than this counts as
    #: a failure of its provider. Under the hedge delay, an attempt beaten by a hedge is one.
    rr_slow_call: float = 0.25
    #: resilient_routing's idle_timeout= for streams: the longest gap between two chunks
    rr_idle_timeout: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(**data)


@dataclass(frozen=True)
class Fault:
    provider: int
    kind: FaultKind
    start: float
    end: float

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    stream: bool
    faults: tuple[Fault, ...]
    duration: float

    def fault_at(self, provider: int, t: float) -> Fault | None:
        for fault in self.faults:
            if fault.provider == provider and fault.active(t):
                return fault
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        faults = tuple(Fault(**f) for f in data["faults"])
        return cls(**{**data, "faults": faults})


def scenarios(duration: float) -> dict[str, Scenario]:
    """Every scenario, the primary faulted from 20 % to 60 % of the run (4-12 s of 20 s)."""
    start, end = round(0.2 * duration, 3), round(0.6 * duration, 3)
    window = f"{start:g}-{end:g} s"

    def one(name: str, kind: FaultKind | None, description: str, stream: bool = False) -> Scenario:
        faults = (Fault(0, kind, start, end),) if kind else ()
        return Scenario(name, description, stream, faults, duration)

    found = [
        one("healthy", None, "every provider healthy"),
        one("down", "down", f"primary hard down {window}"),
        one("errors", "500", f"primary answers 500 {window}"),
        one("ratelimit", "429", f"primary answers 429 + Retry-After {window}"),
        one("slow", "slow", f"primary latency spike {window}"),
        one("hang", "hang", f"primary hangs past the client timeout {window}"),
        one("stream", None, "streaming, every provider healthy", stream=True),
        one("stream_cut", "cut", f"streaming, primary cuts streams {window}", stream=True),
        one("stream_down", "down", f"streaming, primary hard down {window}", stream=True),
        one("stream_slow", "slow", f"streaming, primary first chunk late {window}", stream=True),
    ]
    return {s.name: s for s in found}


FULL = Settings()
#: ``--quick``: a CI smoke run, a few seconds per contender.
QUICK = replace(FULL, duration=2.5, rate=16.0, concurrency=32, divert_gap=0.3, warmup=1)
QUICK_SCENARIOS: tuple[str, ...] = ("healthy", "down", "stream_cut")
