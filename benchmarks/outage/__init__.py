"""Provider outages over local HTTP servers: who keeps answering, and at what cost.

Three OpenAI-compatible servers on loopback (``servers.py``) follow a fault schedule per
scenario (``scenarios.py``: hard down, 500s, 429 with Retry-After, a latency spike, hangs,
cut streams); client processes (``client.py``) send the same fixed-rate load through each
contender (``contenders.py``: resilient_routing on the openai SDK, LiteLLM Router, a tenacity
loop); ``metrics.py`` and ``report.py`` turn what the clients saw and what the servers
logged into a table, JSON and a timeline.

Usage, from the repository root (``pip install -e '.[bench]'``)::

    python -m benchmarks.outage                         # every scenario and contender
    python -m benchmarks.outage --quick                 # a smoke run, well under a minute
    python -m benchmarks.outage --scenarios down,hang --contenders resilient_routing,litellm
    python -m benchmarks.outage --processes 2           # cooldowns shared through Redis
    python -m benchmarks.outage --json out.json --plot timeline.png

Only loopback is used: the servers listen on 127.0.0.1, the clients call them there, and
with ``--processes`` above 1 the cooldown state lives in the Redis at 127.0.0.1:6379, db 14,
under keys named after the run (deleted at the end).
"""
