"""An emulator of a remote Lumilake's optimizer API.

`GET /api/v1/optimizer` -> `{"types": [...]}` and `POST /api/v1/optimizer/schedule`
-> `{"worker_assignment": {...}}`. Both need `Authorization: Bearer <token>` with a
token in `tokens` (401 otherwise), as a Lumilake with an identity provider would.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["FakeOptimizer"]

CATALOG = "/api/v1/optimizer"
SCHEDULE = "/api/v1/optimizer/schedule"


class FakeOptimizer(FakeServer):
    """`catalog_mode` / `schedule_mode`: "ok", "status" (reply `status_code`),
    "garbage" (non-JSON 200), "shape" (JSON of the wrong shape), "hang", "drop".
    """

    name = "optimizer"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: Iterable[str] = (),
        types: Iterable[str] = ("Remote-Greedy", "remote-ilp"),
    ) -> None:
        super().__init__(host, port)
        self.tokens: set[str] = set(tokens)
        self.types: list[Any] = list(types)
        self.worker_assignment: dict[str, list[str]] = {"worker-1": ["n1"]}
        self.catalog_mode = "ok"
        self.schedule_mode = "ok"
        self.status_code = 500

    def catalog_calls(self) -> list[Recorded]:
        return self.calls(CATALOG)

    def schedule_calls(self) -> list[Recorded]:
        return self.calls(SCHEDULE)

    def _failure(self, mode: str) -> Reply | None:
        if mode == "hang":
            self.hang()
            return None
        if mode == "drop":
            return None
        if mode == "status":
            return Reply(self.status_code, {"detail": "unavailable"})
        if mode == "garbage":
            return Reply(200, raw=b"<html>gateway</html>", headers={"Content-Type": "text/html"})
        return Reply(200, ["not", "an", "object"])

    def handle(self, request: Recorded) -> Reply | None:
        route = (request.method, request.path)
        if route not in (("GET", CATALOG), ("POST", SCHEDULE)):
            return Reply(404, {"detail": "not found"})
        mode = self.catalog_mode if request.path == CATALOG else self.schedule_mode
        if mode != "ok":
            return self._failure(mode)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return Reply(401, {"detail": "unauthorized"})
        if request.path == CATALOG:
            return Reply(200, {"types": self.types})
        body = request.json()
        if not isinstance(body, dict) or "optimizer_type" not in body:
            return Reply(422, {"detail": "invalid schedule request"})
        return Reply(200, {"worker_assignment": self.worker_assignment})
