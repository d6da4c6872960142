"""An OpenAI-compatible chat server on 127.0.0.1 with scripted answers.

It speaks ``POST /v1/chat/completions`` (plain JSON, and SSE with
``stream=True``, split into chunks of ``chunk_size`` characters) and
``POST /v1/embeddings`` / ``GET /v1/models`` for pass-through checks. Every
request body is recorded so tests can assert on what the model received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import Recorded, Reply, loopback_server

Script = Callable[[dict[str, Any]], str | dict[str, Any]]


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
        "choices": [{"index": i, "message": message, "finish_reason": "stop", "logprobs": None} for i in range(n)],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def _sse(text: str, body: dict[str, Any], chunk_size: int) -> list[bytes]:
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": body.get("model", "scripted"),
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": text[i : i + chunk_size]}) for i in range(0, len(text), chunk_size)]
    events.append(event({}, "stop"))
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
            text = reply if isinstance(reply, str) else reply.get("content") or ""
            return Reply(content_type="text/event-stream", chunks=_sse(text, body, model.chunk_size))
        return Reply(json_body=_completion(reply, body))

    with loopback_server(handle) as (url, recorded):
        yield f"{url}/v1", recorded


def system_texts(recorded: Recorded, call: int = -1) -> list[str]:
    """The system messages of one recorded chat request."""
    chats = [body for _, path, body in recorded.requests if path.endswith("/chat/completions")]
    return [m["content"] for m in chats[call]["messages"] if m["role"] == "system"]
