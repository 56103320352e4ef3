"""Local HTTP servers that answer like just enough of each SDK's API, for the SDK examples.

A ``FakeAPI`` listens on a free port of 127.0.0.1 (a thread running ``http.server``), gives
every request the same scripted ``Reply`` and records the requests it got. The functions below
build the replies of each API: its success body, and its error in the shape its SDK parses
(the status, the error body, and the server's retry hint where that API puts it).

The servers speak HTTP/1.0 (one request per connection), so no keep-alive connection keeps a
handler thread alive: ``close()`` leaves no thread behind.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What a fake answers: a status, a JSON body and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One request a fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True
    fake: FakeAPI


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake.lock:
            fake.requests.append(Request(self.command, self.path, headers, body))
            reply = fake.reply
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class FakeAPI:
    """A local HTTP server giving every request ``reply``; ``url`` is its base URL."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        """Stop serving and wait for every thread of the server to end."""
        self._server.shutdown()
        self._server.server_close()
        self.thread.join()


# --- openai: chat completions (also what litellm calls for "openai/..." models) -------------


def openai_ok(text: str) -> Reply:
    """A chat completion whose answer is ``text``."""
    return Reply(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
    )


def openai_error(status: int, headers: dict[str, str] | None = None) -> Reply:
    """An OpenAI error body (``{"error": {...}}``) with that status."""
    kind = {429: "rate_limit_exceeded", 400: "invalid_request_error"}.get(status, "server_error")
    body = {"error": {"message": f"fake error {status}", "type": kind, "param": None, "code": kind}}
    return Reply(status, body, headers or {})


# --- anthropic: messages ----------------------------------------------------------------------


def anthropic_ok(text: str) -> Reply:
    """A Messages API answer whose text is ``text``."""
    return Reply(
        200,
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 2},
        },
    )


def anthropic_error(status: int, headers: dict[str, str] | None = None) -> Reply:
    """An Anthropic error body (``{"type": "error", "error": {...}}``) with that status."""
    kind = {
        400: "invalid_request_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": f"fake error {status}"}}
    return Reply(status, body, headers or {})


# --- Gemini (google-genai): generateContent ---------------------------------------------------


def gemini_ok(text: str) -> Reply:
    """A generateContent answer whose text is ``text``."""
    return Reply(
        200,
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
            ],
            "modelVersion": "gemini-2.5-flash",
        },
    )


def gemini_error(status: int, retry_delay: str | None = None) -> Reply:
    """A Google API error body; ``retry_delay`` ("7s") adds a google.rpc.RetryInfo detail."""
    names = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
    details: list[dict[str, str]] = []
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    error = {
        "code": status,
        "message": f"fake error {status}",
        "status": names.get(status, "INTERNAL"),
        "details": details,
    }
    return Reply(status, {"error": error})


# --- Bedrock Runtime (boto3): Converse --------------------------------------------------------


def bedrock_ok(text: str) -> Reply:
    """A Converse answer whose text is ``text``."""
    return Reply(
        200,
        {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
            "metrics": {"latencyMs": 1},
        },
    )


def bedrock_error(status: int, code: str, headers: dict[str, str] | None = None) -> Reply:
    """An AWS REST-JSON error: the code in ``x-amzn-ErrorType``, the message in the body."""
    return Reply(
        status,
        {"message": f"fake {code}"},
        {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        | (headers or {}),
    )


# --- any JSON API (httpx, requests) -----------------------------------------------------------


def json_ok(text: str) -> Reply:
    """A plain JSON answer ``{"answer": text}``."""
    return Reply(200, {"answer": text})


def json_error(status: int, headers: dict[str, str] | None = None) -> Reply:
    """A plain JSON error with that status."""
    return Reply(status, {"error": f"fake error {status}"}, headers or {})
