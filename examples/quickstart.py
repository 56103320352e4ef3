"""A tour of resilient_routing on the in-memory default: no server, no network.

Three image providers: "gemini" is down, "grok" is healthy, "laozhang" is the terminus
(the last resort) and is exempt from cooldown. Run: python examples/quickstart.py
"""

from __future__ import annotations

import logging
import sys

from resilient_routing import (
    AllProvidersFailedError,
    InMemoryCooldownTracker,
    configure,
    get_config,
    routed,
)

# The routing's own records, on stdout. Its messages name the provider, the attempt and the
# error themselves, so the format needs no routing-only field (records of other libraries
# would have none): safe to copy.
handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("  log %(levelname)-7s %(message)s"))
routing_log = logging.getLogger("resilient_routing")
routing_log.addHandler(handler)
routing_log.setLevel(logging.INFO)

DOWN: set[str] = {"gemini"}


class ProviderDown(Exception):
    pass


# Two consecutive failures put a provider in cooldown for 60 s; "laozhang" never cools down.
configure(
    cooldown=InMemoryCooldownTracker(failure_threshold=2, cooldown=60),
    exempt_providers={"laozhang"},
)


@routed(strategy="fallback", providers=["gemini", "grok", "laozhang"])
def generate(provider: str, prompt: str) -> str:
    """Pretend to call one image API."""
    if provider in DOWN:
        raise ProviderDown(f"{provider}: 503 Service Unavailable")
    return f"<image of {prompt!r} by {provider}>"


def show(title: str, prompt: str) -> None:
    print(f"\n== {title}")
    try:
        r = generate.execute(prompt)
    except AllProvidersFailedError as err:
        print(f"  -> {err}")
        print(f"     failures: {[name for name, _ in err.failures]}")
        return
    print(f"  -> {r.response}")
    print(
        f"     provider={r.provider} attempt={r.attempt} terminus={r.was_terminus} "
        f"failed={[name for name, _ in r.failures]} skipped={list(r.skipped)}"
    )


tracker = get_config().cooldown
assert isinstance(tracker, InMemoryCooldownTracker)

show("1. gemini is down: fall back to grok", "a cat")
show("2. gemini fails again and enters cooldown", "a dog")
show("3. gemini is cooling down: skipped without a call", "a fox")
print(
    f"     cooling down: { {n: round(s) for n, s in tracker.cooldowns().items()} } (seconds left)"
)

DOWN.add("grok")
show("4. grok fails too: the terminus laozhang answers", "an owl")

DOWN.add("laozhang")
for i in range(3):
    show(f"5.{i + 1} everything is down; laozhang is exempt, so it never cools down", "a bee")
print(f"     cooling down: {sorted(tracker.cooldowns())} (laozhang is not among them)")

DOWN.clear()
show("6. all recovered, but gemini and grok still cool down: laozhang answers", "a cow")
