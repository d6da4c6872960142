"""A small HTTP server on 127.0.0.1 for tests: real sockets, scripted replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
