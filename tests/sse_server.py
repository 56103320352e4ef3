"""A local server streaming chat completions (server-sent events), with faults.

A ``StreamingAPI`` listens on a free port of 127.0.0.1 and answers every request with its
current ``Script``: an error status before any chunk (with headers such as ``Retry-After``),
or chunks of text, then the end of the stream, a cut (the connection dropped mid-body), or a
stall (the server keeps the connection open and sends nothing until it is closed). It speaks
OpenAI's chat completion chunks, Anthropic's message events (``dialect="anthropic"``) or
Gemini's ``streamGenerateContent`` responses (``dialect="gemini"``).

Bodies are sent with chunked transfer encoding, so a cut is a real protocol error to the
client (an incomplete chunked body), not an early end.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal


@dataclass(frozen=True)
class Script:
    """What the server answers.

    ``status`` other than 200: a JSON error, no stream. Else ``words`` become one chunk each,
    then ``end``: ``"done"`` (``data: [DONE]``), ``"cut"`` (the connection dropped), or
    ``"stall"`` (nothing more until the server closes); ``stall_before`` stalls before the
    first chunk (headers sent).
    """

    status: int = 200
    words: tuple[str, ...] = ("Hello", " world")
    end: Literal["done", "cut", "stall"] = "done"
    stall_before: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def _chunk(text: str, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _event(kind: str, **body: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body})}\n\n".encode()


#: Anthropic's events around the text deltas of one message.
_MESSAGE_START = _event(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    },
) + _event("content_block_start", index=0, content_block={"type": "text", "text": ""})
_MESSAGE_END = (
    _event("content_block_stop", index=0)
    + _event(
        "message_delta",
        delta={"stop_reason": "end_turn", "stop_sequence": None},
        usage={"output_tokens": 2},
    )
    + _event("message_stop")
)


def _delta(text: str) -> bytes:
    return _event("content_block_delta", index=0, delta={"type": "text_delta", "text": text})


def _gemini(text: str, finish: str | None = None) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    body = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
    return f"data: {json.dumps(body)}\r\n\r\n".encode()


#: Per dialect: what opens a stream, each word's chunk, and what ends it.
_DIALECTS: dict[str, tuple[bytes, Any, bytes]] = {
    "openai": (b"", _chunk, _chunk("", "stop") + b"data: [DONE]\n\n"),
    "anthropic": (_MESSAGE_START, _delta, _MESSAGE_END),
    "gemini": (b"", _gemini, _gemini("", "STOP")),
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: StreamingAPI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        api = self.server.api
        with api.lock:
            api.requests += 1
            script = api.script
        if script.status != 200:
            payload = json.dumps(
                {"error": {"message": "fake", "type": "rate_limit_exceeded", "code": None}}
            ).encode()
            self.send_response(script.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            for name, value in script.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        opening, chunk, ending = _DIALECTS[api.dialect]
        try:
            if script.stall_before:
                self._stall()
                return
            if opening:
                self._send(opening)
            for word in script.words:
                self._send(chunk(word))
            if script.end == "cut":
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if script.end == "stall":
                self._stall()
                return
            self._send(ending)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            with api.lock:
                api.hung_up += 1  # the client closed its end

    def _send(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stall(self) -> None:
        """Send nothing until the client hangs up or the server closes."""
        api = self.server.api
        self.connection.settimeout(0.02)
        while not api.closing.is_set():
            try:
                if self.connection.recv(1) == b"":
                    break  # the client closed the connection
            except TimeoutError:
                continue
            except OSError:
                break
        with api.lock:
            api.hung_up += 1

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class StreamingAPI:
    """A local streaming server; ``url`` is its ``/v1`` base URL (OpenAI's), ``root`` its root.

    Args:
        script: what it answers (it can be changed between requests).
        dialect: ``"openai"`` (chat completion chunks), ``"anthropic"`` (message events) or
            ``"gemini"`` (``GenerateContentResponse`` chunks).
    """

    def __init__(
        self,
        script: Script | None = None,
        dialect: Literal["openai", "anthropic", "gemini"] = "openai",
    ) -> None:
        self.script = script or Script()
        self.dialect = dialect
        self.requests = 0
        #: Streams whose client hung up while the server was still sending or stalling.
        self.hung_up = 0
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self.root = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{self.root}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Release stalled streams, stop serving."""
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
