r"""Cooldown state shared through Redis, so every process using one server and prefix agrees.

How it works:

- **One Lua script per state change.** Counting a failure, clearing a provider and resetting
  everything are each a single ``EVALSHA`` (scripts registered once with redis-py's
  ``register_script``, which reloads them after a server restart): no read-then-write race, so
  when many processes fail one provider at once exactly one of them starts the cooldown.
- **Server time.** The scripts read the clock with ``TIME`` on the server, never the clients'
  clocks, which disagree between hosts; only tests inject a clock (``clock=``).
- **Keys** (``P`` is the prefix), each with a TTL so that abandoned providers vanish:

  ========================  ============================================================
  ``P:p:<name>``            hash: ``f`` consecutive failures, ``l`` consecutive cooldowns,
                            ``u`` end of the cooldown (ms)
  ``P:names``               sorted set: providers with state -> when their hash expires
  ``P:cooling``             sorted set: providers cooling down -> end of the cooldown
  ``P:seq``                 the sequence number of the last published event
  ``P:events:<db>``         pub/sub channel: ``op|seq|remaining_ms|name`` (pub/sub spans
                            databases, so the channel names the database); a shard
                            channel on a Redis Cluster
  ========================  ============================================================

- **A local view, no round trip on the happy path.** Each tracker keeps which providers are
  cooling down (name -> local deadline) and which have state in Redis ("dirty": a success of
  a provider that never failed costs nothing). A background listener (a daemon thread, or a
  task for the async tracker) subscribes to ``P:events:<db>`` and, on every (re)subscription,
  reloads the whole state from the two sorted sets. Events and replies carry a sequence
  number anchored to the server's clock, so a late event never overwrites newer state.
- **Redis Cluster** (``cluster.py``). The braces around the prefix are a hash tag: a prefix's
  keys share one slot, so each script runs on one primary, atomically. Events go out with
  ``SPUBLISH`` on the shard channel ``{P}:events:0`` (the same slot) and the listener
  ``SSUBSCRIBE``\ s at the node serving it, moving with the slot (failover, resharding).
- **Sentinel** (``sentinel.py``). A client from ``Sentinel.master_for()`` finds the primary
  at each connection: after a failover the tracker's next connection reaches the new one.
- **Fail-open.** Any Redis error opens a breaker of the tracker's own for ``retry_interval``
  seconds: providers count as available, outcomes are not recorded, nothing raises, one
  WARNING when Redis is lost and one INFO when it is back. Then one caller (or the listener)
  probes; the others keep failing open until it answers.
"""
