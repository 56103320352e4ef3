"""The Lua scripts of the Redis trackers and the layout of their keys (see ``_redis``)."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = [
    "CLAIM",
    "CLEAR",
    "CLEAR_ALL",
    "COUNTER",
    "FAILURE",
    "PEEK",
    "PROBE",
    "SNAPSHOT",
    "STATES",
    "Keys",
    "Registered",
    "encoded",
    "publishing",
]

# ---------------------------------------------------------------------------------------
# Lua. Numbers go to redis.call() through string.format('%.0f'): Lua 5.1 would print large
# ones in exponent notation, which PEXPIRE refuses.
# ---------------------------------------------------------------------------------------

_PRELUDE = """
local function n(x) return string.format('%.0f', x) end
local function stamp(given)
  local t = redis.call('TIME')
  local sec, usec = tonumber(t[1]), tonumber(t[2])
  local server_ms = sec * 1000 + math.floor(usec / 1000)
  local now = server_ms
  if given ~= '' then now = tonumber(given) end
  return now, server_ms, sec * 1000000 + usec
end
-- Sequence numbers never go back, even when the key expired or the server restarted empty:
-- a fresh one starts from the server's clock in microseconds.
local function current_seq(key, us)
  return tonumber(redis.call('GET', key)) or (us - 1)
end
local function next_seq(key, us, ttl)
  local seq = math.max((tonumber(redis.call('GET', key)) or 0) + 1, us)
  redis.call('SET', key, n(seq), 'PX', ttl)
  return seq
end
local function publish(channel, op, seq, remaining, name)
  redis.call('PUBLISH', channel, op .. '|' .. n(seq) .. '|' .. n(remaining) .. '|' .. name)
end
"""

# The state hash of a provider: f (failures), l (level), u (when its cooldown ends, 0: none
# since its last success), p (when the claim of its half-open probe ends), n (its name).
# The cooling index holds, scored by u (once its probe is claimed: by the claim's end), every
# provider whose cooldown has not been followed by a success (running or over: a half-open
# tracker must claim a probe then), while its state hash lives.

# KEYS: state hash, names, cooling, seq.
# ARGV: now ('' = server time), name, channel, keep ms, index ttl ms, threshold, half-open
#       ('1' or '0'), Retry-After ms ('' = none), cooldown ms of level 1, 2, ... (the last one
#       repeats).
# Returns {1 if this failure started a cooldown, remaining ms, seq}.
FAILURE = (
    _PRELUDE
    + """
local now, server_ms, us = stamp(ARGV[1])
local name, channel = ARGV[2], ARGV[3]
local keep, index_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local threshold, half_open, hinted = tonumber(ARGV[6]), ARGV[7] == '1', tonumber(ARGV[8])
local state = redis.call('HMGET', KEYS[1], 'f', 'l', 'u')
local failures = tonumber(state[1]) or 0
local level = tonumber(state[2]) or 0
local ends = tonumber(state[3]) or 0
local started = 0
local changed = state[1] == false
if now < ends then
  if hinted == nil or now + hinted <= ends then
    return {0, ends - now, current_seq(KEYS[4], us)}
  end
  ends = now + hinted
  changed = true
else
  failures = failures + 1
  if hinted ~= nil then
    ends = now + hinted
    started = 1
  elseif failures >= threshold or (half_open and ends > 0) then
    level = level + 1
    ends = now + tonumber(ARGV[8 + math.min(level, #ARGV - 8)])
    started = 1
  end
  if started == 1 then
    failures = 0
    changed = true
  end
end
local remaining = math.max(ends - now, 0)
local ttl = remaining + keep
-- HSET first: out of memory, the server refuses a script's first write when it may grow
-- memory (HSET), not when it frees some (HDEL), and lets a script that wrote go on.
redis.call('HSET', KEYS[1], 'f', n(failures), 'l', n(level), 'u', n(ends), 'n', name)
if started == 1 then
  redis.call('HDEL', KEYS[1], 'p')  -- a new cooldown: the old probe's claim is void
end
redis.call('PEXPIRE', KEYS[1], n(ttl))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', n(server_ms))
redis.call('ZADD', KEYS[2], n(server_ms + ttl), name)
redis.call('PEXPIRE', KEYS[2], n(index_ttl))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', n(now - keep))
if ends > 0 then
  redis.call('ZADD', KEYS[3], n(ends), name)
  redis.call('PEXPIRE', KEYS[3], n(index_ttl))
end
local seq
if changed then
  seq = next_seq(KEYS[4], us, index_ttl)
  local op = 'F'
  if remaining > 0 then op = 'C' end
  publish(channel, op, seq, remaining, name)
else
  seq = current_seq(KEYS[4], us)
end
return {started, remaining, seq}
"""
)

# KEYS: state hash, names, cooling, seq. ARGV: name, channel, index ttl ms.
# Returns {1 if there was state to clear, seq}.
CLEAR = (
    _PRELUDE
    + """
local _, _, us = stamp('')
if redis.call('DEL', KEYS[1]) == 0 then
  return {0, current_seq(KEYS[4], us)}
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local seq = next_seq(KEYS[4], us, tonumber(ARGV[3]))
publish(ARGV[2], 'X', seq, 0, ARGV[1])
return {1, seq}
"""
)

# KEYS: names, cooling, seq. ARGV: key prefix of the state hashes, channel, index ttl ms.
# The state hashes are named from the index (the prefix and the SHA-1 of the name): they
# share the hash-tagged prefix's cluster slot. Returns seq.
CLEAR_ALL = (
    _PRELUDE
    + """
local _, _, us = stamp('')
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  redis.call('DEL', ARGV[1] .. redis.sha1hex(name))
end
redis.call('DEL', KEYS[1], KEYS[2])
local seq = next_seq(KEYS[3], us, tonumber(ARGV[3]))
publish(ARGV[2], 'Z', seq, 0, '')
return seq
"""
)

# KEYS: names, cooling, seq. ARGV: now.
# Returns {seq, names with state, {name, remaining ms, ...} of the cooling index: negative
# for a cooldown over with no success since}. A cooling entry whose state expired is left
# out: the provider is clean (FAILURE prunes such entries only as it passes).
SNAPSHOT = (
    _PRELUDE
    + """
local now, server_ms, us = stamp(ARGV[1])
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. n(server_ms), '+inf')
local alive = {}
for _, name in ipairs(names) do alive[name] = true end
local cooling = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local flat = {}
for i = 1, #cooling, 2 do
  if alive[cooling[i]] then
    flat[#flat + 1] = cooling[i]
    flat[#flat + 1] = tonumber(cooling[i + 1]) - now
  end
end
return {current_seq(KEYS[3], us), names, flat}
"""
)

# KEYS: state hash, seq. ARGV: now.
# Returns {1 if it has state, ms until its cooldown (or a probe's claim) ends: negative when
# over, seq, 1 if a cooldown started since its last success}.
PEEK = (
    _PRELUDE
    + """
local now, _, us = stamp(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'f', 'u', 'p')
if state[1] == false then
  return {0, 0, current_seq(KEYS[2], us), 0}
end
local ends = tonumber(state[2]) or 0
local cooled = 0
if ends > 0 then cooled = 1 end
local deadline = math.max(ends, tonumber(state[3]) or 0)
return {1, deadline - now, current_seq(KEYS[2], us), cooled}
"""
)

# KEYS: state hash, names, cooling, seq. ARGV: now, name, channel, lease ms, index ttl ms.
# Half-open trackers ask before calling a provider whose cooldown is over: the first to ask
# claims the probe (for lease ms), every other one is refused until its outcome or its lease
# ends. Returns {0: refused, 1: admitted, 2: admitted as the probe; ms until another caller
# may call it (the cooldown's rest, a probe's lease; 0: free), seq, 1 if it has state}.
CLAIM = (
    _PRELUDE
    + """
local now, server_ms, us = stamp(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'u', 'p')
local ends = tonumber(state[1])
if ends == nil then
  return {1, 0, current_seq(KEYS[4], us), 0}
end
if now < ends then
  return {0, ends - now, current_seq(KEYS[4], us), 1}
end
if ends == 0 then
  return {1, 0, current_seq(KEYS[4], us), 1}
end
local probe = tonumber(state[2]) or 0
if now < probe then
  return {0, probe - now, current_seq(KEYS[4], us), 1}
end
local lease = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'p', n(now + lease))
-- A tracker loading the prefix while the probe is out must refuse it too: the cooling index
-- holds it until the claim ends (a failure elsewhere prunes by that), and the state lives
-- as long, the names index saying so (SNAPSHOT and STATES read it).
redis.call('ZADD', KEYS[3], n(now + lease), ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], n(lease))
  redis.call('ZADD', KEYS[2], n(server_ms + lease), ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local seq = next_seq(KEYS[4], us, tonumber(ARGV[5]))
publish(ARGV[3], 'P', seq, lease, ARGV[2])
return {2, lease, seq, 1}
"""
)

# KEYS: names zset. ARGV: now ms ('' = server time), the state key prefix. Read-only, for
# operators: {name, failures, level, remaining ms, probe lease ms, ...} for every provider
# with state. (It reads keys it is not given: they share the prefix's hash tag, so a cluster
# node has them.)
STATES = (
    _PRELUDE
    + """
local now = stamp(ARGV[1])
local out = {}
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local s = redis.call('HMGET', ARGV[2] .. redis.sha1hex(name), 'f', 'l', 'u', 'p')
  if s[1] or s[2] or s[3] then
    out[#out + 1] = name
    out[#out + 1] = tonumber(s[1]) or 0
    out[#out + 1] = tonumber(s[2]) or 0
    out[#out + 1] = n(math.max((tonumber(s[3]) or 0) - now, 0))
    out[#out + 1] = n(math.max((tonumber(s[4]) or 0) - now, 0))
  end
end
return out
"""
)

# KEYS: probe. ARGV: ttl ms. A harmless write: whether the server takes scripts that write
# again (out of memory, read-only and permission errors refuse them while PING answers).
PROBE = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
"""

# KEYS: counter. ARGV: ttl ms. Returns the incremented counter.
COUNTER = """
local value = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return value
"""


def publishing(script: str, sharded: bool) -> str:
    """Return ``script`` publishing its events with ``SPUBLISH`` when ``sharded``, as written else.

    On a Redis Cluster, ``PUBLISH`` reaches every node of the cluster over the cluster bus;
    ``SPUBLISH`` (sharded pub/sub, Redis 7) only the shard serving the channel's slot, which
    is the prefix's slot: the channel carries the prefix's hash tag.
    """
    return script.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',") if sharded else script


class Registered:
    """The scripts a tracker runs, registered on its client (no round trip until first use).

    ``sharded``: the scripts publish with ``SPUBLISH`` (see :func:`publishing`).
    """

    __slots__ = (
        "all",
        "claim",
        "clear",
        "clear_all",
        "failure",
        "peek",
        "probe",
        "snapshot",
        "states",
    )

    def __init__(self, client: Any, sharded: bool = False) -> None:
        def register(script: str) -> Any:
            return client.register_script(publishing(script, sharded))

        self.failure = register(FAILURE)
        self.clear = register(CLEAR)
        self.clear_all = register(CLEAR_ALL)
        self.peek = register(PEEK)
        self.snapshot = register(SNAPSHOT)
        self.states = register(STATES)
        self.probe = register(PROBE)
        self.claim = register(CLAIM)
        #: What the listener loads on every (re)subscription, sparing callers the NOSCRIPT
        #: round trips after a server restart.
        self.all = (
            self.failure,
            self.clear,
            self.clear_all,
            self.peek,
            self.snapshot,
            self.probe,
            self.claim,
        )


def encoded(name: str) -> bytes:
    """Return a provider's name as Redis stores it: UTF-8, lone surrogates kept as they are.

    Any str is a valid name, even one the strict UTF-8 codec refuses.
    """
    return name.encode("utf-8", "surrogatepass")


class Keys:
    """The names of a prefix's keys and channel.

    Every key starts with the prefix in braces, a Redis Cluster hash tag, so that a prefix's
    keys share one slot (and one server); a provider's state hash is named by the SHA-1 of its
    name, so that no name, whatever its characters, can reach another name's or another
    prefix's keys.
    """

    __slots__ = ("channel", "cooling", "names", "prefix", "probe", "seq", "state_prefix")

    def __init__(self, prefix: str, db: int = 0) -> None:
        self.prefix = prefix
        tag = "{" + prefix + "}"
        self.state_prefix = f"{tag}:p:"
        self.names = f"{tag}:names"
        self.cooling = f"{tag}:cooling"
        self.seq = f"{tag}:seq"
        self.probe = f"{tag}:probe"
        # Pub/sub ignores database numbers: the channel names the database its keys live in.
        self.channel = f"{tag}:events:{db}"

    def state(self, name: bytes) -> str:
        """Return the key of the state hash of a provider (its name as :func:`encoded`)."""
        return self.state_prefix + hashlib.sha1(name, usedforsecurity=False).hexdigest()

    def counter(self, key: str) -> str:
        """Return the key of a shared counter."""
        return "{" + self.prefix + "}:counter:" + key
