"""A small threaded HTTP/1.1 server on 127.0.0.1 that the emulators build on.

Stdlib only, keep-alive, one thread per connection. Every emulator records the
requests it saw so tests can assert on them, and can deliver its replies in hostile
ways (`delivery`: see `lumid_fakes.hostile`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs

from .hostile import deliver
from .service import Service

__all__ = ["FakeServer", "Recorded", "Reply"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)
    """The client's address: requests from one pooled connection share it."""

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delivery: str | None = None
    """How to send it (`lumid_fakes.hostile`); None: the fake's `delivery`."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY the reply's header and body segments meet the client's
    # delayed ACK: every keep-alive request then costs ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        peer = (str(self.client_address[0]), int(self.client_address[1]))
        req = Recorded(self.command, self.path, headers, body, peer)
        fake = self.server.fake
        with fake.lock:
            fake.requests.append(req)
        reply = fake.handle(req)
        if reply is None:  # drop the connection without a reply
            self.close_connection = True
            self.connection.close()
            return
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        delivery = reply.delivery or fake.delivery_paths.get(req.path, fake.delivery)
        if delivery != "normal":
            self._deliver(reply, payload, delivery)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.headers.get("Content-Type", "application/json"))
        for k, v in reply.headers.items():
            if k != "Content-Type":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _deliver(self, reply: Reply, payload: bytes, delivery: str) -> None:
        fake = self.server.fake
        self.close_connection = True
        lines = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
        lines.append("Content-Type: " + reply.headers.get("Content-Type", "application/json"))
        lines += [f"{k}: {v}" for k, v in reply.headers.items() if k != "Content-Type"]
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        deliver(
            self.wfile,
            delivery,
            head,
            payload,
            stop=fake.released,
            drip_seconds=fake.drip_seconds,
            huge_bytes=fake.huge_bytes,
        )

    do_GET = _handle
    do_POST = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    fake: FakeServer


class FakeServer(Service):
    """Base class: subclasses implement `handle(request) -> Reply | None`."""

    name: ClassVar[str] = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._httpd = _Server((host, port), _Handler, bind_and_activate=True)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None
        self.released = threading.Event()  # set to free handlers that hang
        self.delivery = "normal"  # how replies are sent: lumid_fakes.hostile
        self.delivery_paths: dict[str, str] = {}  # per-path override of `delivery`
        self.drip_seconds = 1.5
        self.huge_bytes = 300 * 2**20

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, request: Recorded) -> Reply | None:
        raise NotImplementedError

    def hang(self, seconds: float = 30.0) -> None:
        """Block the handling thread until `released` is set (or `seconds` pass)."""
        self.released.wait(seconds)

    def calls(self, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
