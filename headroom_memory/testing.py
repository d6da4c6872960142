"""Test helpers: an OpenAI-compatible chat server on 127.0.0.1 with scripted answers.

For your own tests, notebooks and demos without an API key::

    from headroom_memory.testing import ScriptedModel, openai_server

    with openai_server(ScriptedModel(["Hi!\n<memory>[]</memory>"])) as (base_url, recorded):
        client = with_memory(OpenAI(base_url=base_url, api_key="test"), user_id="alice")

The server speaks ``POST .../chat/completions`` (plain JSON, and SSE with
``stream=True`` in chunks of ``chunk_size`` characters), ``POST /v1/embeddings``
and ``GET /v1/models``. Every request body is recorded so tests can check what
the model received. It listens on a free loopback port only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Recorded", "Reply", "ScriptedModel", "loopback_server", "openai_server", "system_texts"]


@dataclass
class Reply:
    """What the server sends: a JSON body, or raw bytes with a content type."""

    status: int = 200
    json_body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    chunks: list[bytes] | None = None


@dataclass
class Recorded:
    """Requests the server received: (method, path, parsed JSON body)."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)


Handler = Callable[[str, str, Any], Reply]


class _QuietServer(ThreadingHTTPServer):
    """Does not print a traceback when a client drops its connection."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


@contextmanager
def loopback_server(handler: Handler) -> Iterator[tuple[str, Recorded]]:
    """Serve ``handler(method, path, json_body) -> Reply`` on a free loopback port.

    Yields the base URL (``http://127.0.0.1:PORT``) and the record of requests.
    """
    recorded = Recorded()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            recorded.requests.append((self.command, self.path, body))
            reply = handler(self.command, self.path, body)
            if reply.chunks is not None:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in reply.chunks:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                return
            payload = reply.raw if reply.raw is not None else json.dumps(reply.json_body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

@dataclass
class ScriptedModel:
    """Answers with ``replies`` in order (a string is the assistant text; a dict
    is a whole message, e.g. with tool_calls); the last one repeats."""

    replies: list[str | dict[str, Any]] = field(default_factory=lambda: ["OK"])
    chunk_size: int = 7
    calls: int = 0

    def next_reply(self) -> str | dict[str, Any]:
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        return reply


def _completion(reply: str | dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    message = reply if isinstance(reply, dict) else {"role": "assistant", "content": reply}
    n = int(body.get("n") or 1)
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": i, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"} for i in range(n)],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def _sse(reply: str | dict[str, Any], body: dict[str, Any], chunk_size: int) -> list[bytes]:
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": body.get("model", "scripted"),
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    text = reply if isinstance(reply, str) else reply.get("content") or ""
    tool_calls = [] if isinstance(reply, str) else reply.get("tool_calls") or []
    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": text[i : i + chunk_size]}) for i in range(0, len(text), chunk_size)]
    if tool_calls:
        events.append(event({"tool_calls": [{"index": i, **call} for i, call in enumerate(tool_calls)]}))
    events.append(event({}, "tool_calls" if tool_calls else "stop"))
    events.append(b"data: [DONE]\n\n")
    return events


@contextmanager
def openai_server(model: ScriptedModel) -> Iterator[tuple[str, Recorded]]:
    """Serve ``model``; yields the base URL for clients (``.../v1``) and the record."""

    def handle(method: str, path: str, body: Any) -> Reply:
        if path == "/v1/models":
            return Reply(json_body={"object": "list", "data": [{"id": "scripted", "object": "model",
                                                                 "created": 0, "owned_by": "test"}]})
        if path == "/v1/embeddings":
            return Reply(json_body={"object": "list", "model": "e", "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2]} for i, _ in enumerate(body["input"])],
                "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        if not path.endswith("/chat/completions"):
            return Reply(404, {"error": {"message": "not found"}})
        reply = model.next_reply()
        if body.get("stream"):
            return Reply(content_type="text/event-stream", chunks=_sse(reply, body, model.chunk_size))
        return Reply(json_body=_completion(reply, body))

    with loopback_server(handle) as (url, recorded):
        yield f"{url}/v1", recorded


def system_texts(recorded: Recorded, call: int = -1) -> list[str]:
    """The system messages of one recorded chat request."""
    chats = [body for _, path, body in recorded.requests if path.endswith("/chat/completions")]
    return [m["content"] for m in chats[call]["messages"] if m["role"] == "system"]
