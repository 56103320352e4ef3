"""From what the clients saw and what the servers logged, the numbers of one run.

- success: calls that returned (a stream: every chunk) / calls started;
- latency (p50/p95/p99) of the successful calls, from their scheduled start; for streams also
  the time to the first chunk (TTFT);
- fault hits: requests that reached a faulted provider while its fault was on and received
  that fault (counted at the server: a reset connection, a 500, a 429, a spike, a hang, a cut);
- divert: from a fault's start to the last call the provider received before it first went
  ``divert_gap`` seconds without any ("never" when traffic never paused during the fault);
- back: from a fault's end to the first request the provider answered normally again
  ("never" when none came before the run ended);
- client CPU per call: the client processes' CPU time over the run / calls started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .scenarios import PROVIDERS, Fault, Scenario, Settings
from .servers import Arrival

BIN = 0.5  # seconds per bin of the timelines


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def divert_time(fault: Fault, log: Sequence[Arrival], gap: float) -> float | None:
    """Seconds from the fault's start until the provider stopped getting calls, or None."""
    last = fault.start
    for arrival in sorted(a.t for a in log if a.provider == fault.provider):
        if arrival < fault.start:
            continue
        if arrival >= fault.end:
            break
        if arrival - last >= gap:
            return last - fault.start
        last = arrival
    return last - fault.start if fault.end - last >= gap else None


def back_time(fault: Fault, log: Sequence[Arrival]) -> float | None:
    """Seconds from the fault's end to the provider's first normal answer, or None."""
    times = [a.t for a in log if a.provider == fault.provider and a.outcome == "ok"]
    after = [t for t in times if t >= fault.end]
    return min(after) - fault.end if after else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _bins(times: Sequence[float], duration: float) -> list[float]:
    count = math.ceil((duration + 2) / BIN)
    found = [0.0] * count
    for t in times:
        if 0 <= t < count * BIN:
            found[int(t // BIN)] += 1 / BIN
    return found


def summarize(
    scenario: Scenario,
    settings: Settings,
    calls: Sequence[dict[str, Any]],
    cpu: float,
    lost: int,
    log: Sequence[Arrival],
) -> dict[str, Any]:
    ok = [c for c in calls if c["ok"]]
    latencies = [c["latency"] for c in ok]
    ttfts = [c["ttft"] for c in ok if c["ttft"] is not None]
    started = len(calls) + lost
    errors: dict[str, int] = {}
    for c in calls:
        if not c["ok"]:
            errors[c["error"]] = errors.get(c["error"], 0) + 1
    if lost:
        errors["Lost"] = lost
    faults = []
    for fault in scenario.faults:
        hits = [
            a
            for a in log
            if a.provider == fault.provider and fault.active(a.t) and a.outcome != "ok"
        ]
        divert = divert_time(fault, log, settings.divert_gap)
        back = back_time(fault, log)
        faults.append(
            {
                "provider": PROVIDERS[fault.provider],
                "kind": fault.kind,
                "start": fault.start,
                "end": fault.end,
                "hits": len(hits),
                "divert_s": None if divert is None else round(divert, 3),
                "back_s": None if back is None else round(back, 3),
            }
        )
    per_provider = {
        name: sum(1 for a in log if a.provider == i) for i, name in enumerate(PROVIDERS)
    }
    return {
        "calls": started,
        "ok": len(ok),
        "success": round(len(ok) / started, 4) if started else None,
        "errors": errors,
        "latency_ms": {
            "p50": _ms(percentile(latencies, 50)),
            "p95": _ms(percentile(latencies, 95)),
            "p99": _ms(percentile(latencies, 99)),
        },
        "ttft_ms": {"p50": _ms(percentile(ttfts, 50)), "p95": _ms(percentile(ttfts, 95))}
        if scenario.stream
        else None,
        "faults": faults,
        "requests_per_provider": per_provider,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_call": round(cpu / started * 1000, 3) if started else None,
        "timeline": {
            "bin_s": BIN,
            "requests_per_s": {
                name: _bins([a.t for a in log if a.provider == i], scenario.duration)
                for i, name in enumerate(PROVIDERS)
            },
            "failed_calls_per_s": _bins([c["t"] for c in calls if not c["ok"]], scenario.duration),
        },
    }
