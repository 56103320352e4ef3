"""Local OpenAI-compatible providers with a fault schedule: one aiohttp server per port.

``POST /v1/chat/completions`` answers a chat completion (JSON) or, with ``"stream": true``,
server-sent events (``data: {chunk}`` lines, then ``data: [DONE]``). While a fault of the
running scenario is active on a provider, its server misbehaves (see ``FAULT_KINDS``):

- ``down``: every new connection is reset as soon as it is accepted (RST, before any byte),
  and the connections clients keep alive are reset when the outage starts, so a client sees
  the same ``APIConnectionError`` as for a refused connection, and each attempt is still
  counted here;
- ``500`` / ``429`` (with ``Retry-After``): an OpenAI-style error body;
- ``slow``: the answer after a latency spike; ``hang``: no answer for ``hang`` seconds;
- ``cut``: a stream reset after ``cut_after`` chunks.

Every request that arrives while a run is on is logged as ``(t, provider, outcome)``, the
outcome being ``"ok"`` or the fault it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .scenarios import PROVIDERS, Scenario, Settings

MODEL = "bench-model"
PROMPT_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass(frozen=True)
class Arrival:
    t: float
    provider: int
    outcome: str


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close a connection with a TCP reset (SO_LINGER 0), not an orderly FIN."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


class _Refuse(asyncio.Protocol):
    """A connection accepted during a hard-down window: logged, then reset at once."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._log()
        _reset(transport)


class FakeProviders:
    """The providers' servers, one per port, all on this event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ports: list[int] = []
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []
        self._scenario: Scenario | None = None
        self._t0 = 0.0
        self._log: list[Arrival] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._rng = random.Random(17)
        # The connections each provider is answering a request on, to count the requests an
        # outage cuts at its start.
        self._busy: list[set[asyncio.BaseTransport]] = [set() for _ in PROVIDERS]

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for index in range(len(PROVIDERS)):
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handler(index))
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            server = await loop.create_server(
                self._factory(index, runner), "127.0.0.1", 0, reuse_address=True
            )
            self._runners.append(runner)
            self._servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for runner in self._runners:
            await runner.cleanup()

    def begin(self, scenario: Scenario, t0: float) -> None:
        """Follow ``scenario`` from the wall-clock instant ``t0``, logging every request."""
        self._scenario, self._t0, self._log = scenario, t0, []
        loop = asyncio.get_running_loop()
        for fault in scenario.faults:
            if fault.kind == "down":
                delay = max(0.0, t0 + fault.start - time.time())
                self._timers.append(loop.call_later(delay, self._drop_connections, fault.provider))

    def end(self) -> list[Arrival]:
        """Stop following the scenario (every provider healthy again); return the log."""
        for timer in self._timers:
            timer.cancel()
        self._timers, self._scenario = [], None
        return self._log

    # -- faults ----------------------------------------------------------------------------

    def _now(self) -> float:
        return time.time() - self._t0

    def _fault(self, index: int) -> tuple[float, str | None]:
        if self._scenario is None:
            return 0.0, None
        t = self._now()
        fault = self._scenario.fault_at(index, t)
        return t, fault.kind if fault else None

    def _record(self, t: float, index: int, outcome: str) -> None:
        if self._scenario is not None:
            self._log.append(Arrival(round(t, 4), index, outcome))

    def _drop_connections(self, index: int) -> None:
        server = self._runners[index].server
        if server is None:
            return
        t = self._now()
        for transport in self._busy[index]:
            if not transport.is_closing():
                self._record(t, index, "down")
        for handler in list(server.connections):
            _reset(handler.transport)

    def _factory(self, index: int, runner: web.AppRunner) -> Any:
        def build() -> asyncio.BaseProtocol:
            t, kind = self._fault(index)
            if kind == "down":
                return _Refuse(lambda: self._record(t, index, "down"))
            assert runner.server is not None
            return runner.server()

        return build

    # -- answers ---------------------------------------------------------------------------

    def _handler(self, index: int) -> Any:
        settings = self.settings

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            stream = bool(body.get("stream"))
            t, kind = self._fault(index)
            self._record(t, index, kind or "ok")
            if kind == "down":  # a kept-alive connection that outlived the outage's start
                _reset(request.transport)
                raise asyncio.CancelledError
            if kind == "500":
                return _error(500, "server_error", "the provider failed")
            if kind == "429":
                response = _error(429, "rate_limit_exceeded", "rate limit reached")
                response.headers["Retry-After"] = str(settings.retry_after)
                return response
            transport = request.transport
            if transport is not None:
                self._busy[index].add(transport)
            try:
                if kind == "hang":
                    await asyncio.sleep(settings.hang)
                if kind == "slow":
                    await asyncio.sleep(settings.spike)
                if stream:
                    return await self._stream(request, index, cut=kind == "cut")
                await asyncio.sleep(settings.base_latency * self._rng.uniform(0.6, 1.4))
                return web.json_response(_completion(index))
            finally:
                self._busy[index].discard(transport)

        return handle

    async def _stream(self, request: web.Request, index: int, *, cut: bool) -> web.StreamResponse:
        settings = self.settings
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        ident = f"chatcmpl-{index}-{self._rng.getrandbits(32):08x}"
        try:
            # A client that gave up (a hedge won elsewhere) may be gone before the headers.
            await response.prepare(request)
            await asyncio.sleep(2 * settings.chunk_interval)
            for n in range(settings.stream_chunks):
                if cut and n == settings.cut_after:
                    _reset(request.transport)
                    raise asyncio.CancelledError
                delta: dict[str, str] = {"content": PROMPT_WORDS[n % len(PROMPT_WORDS)] + " "}
                if n == 0:
                    delta["role"] = "assistant"
                await response.write(_sse(_chunk(ident, delta, None)))
                await asyncio.sleep(settings.chunk_interval)
            await response.write(_sse(_chunk(ident, {}, "stop")))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the client left, or an outage reset the connection mid-stream
        return response


def _error(status: int, code: str, message: str) -> web.Response:
    kind = "rate_limit_error" if status == 429 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status)


def _completion(index: int) -> dict[str, Any]:
    text = f"answer from {PROVIDERS[index]}"
    return {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    }


def _chunk(ident: str, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
