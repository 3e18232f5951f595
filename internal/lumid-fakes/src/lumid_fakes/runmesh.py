"""An emulator of Runmesh's billing bridge (`/billing/flowmesh-entry`, `/billing/check-balance`)."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["FakeRunmesh"]

ENTRY_PATH = "/billing/flowmesh-entry"
BALANCE_PATH = "/billing/check-balance"


class FakeRunmesh(FakeServer):
    """Users known by email with a balance; entries charged once per taskId.

    Replies use Runmesh's envelope `{code, msg, data}` over HTTP 200. `mode` switches
    failure behaviour for every request: "ok"; "down" (close the connection without
    a reply); "slow" (sleep `delay` seconds, then answer normally); "hang" (block
    until `released` is set); "status" (HTTP `status_code`, e.g. 503); "envelope"
    (HTTP 200 with `{"code": envelope_code, "msg": envelope_msg}`). A request with a
    wrong `X-Bridge-Secret` gets HTTP 401 in every mode but "down"/"hang".
    `entries` maps taskId -> the first body accepted for it.
    """

    name = "runmesh"

    def __init__(self, secret: str | None = None, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.secret = secret if secret is not None else "fake-" + secrets.token_hex(16)
        self.balances: dict[str, Decimal] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.mode = "ok"
        self.path_modes: dict[str, str] = {}  # per-path override of `mode`
        self.delay = 0.0
        self.status_code = 503
        self.envelope_code = 500
        self.envelope_msg = "internal error"

    def add_user(self, email: str, balance: Decimal | str | int = "100") -> None:
        with self.lock:
            self.balances[email] = Decimal(str(balance))

    def entry_calls(self) -> list[Recorded]:
        return self.calls(ENTRY_PATH)

    def balance_calls(self) -> list[Recorded]:
        return self.calls(BALANCE_PATH)

    def handle(self, request: Recorded) -> Reply | None:
        if request.method != "POST" or request.path not in (ENTRY_PATH, BALANCE_PATH):
            return Reply(404, {"code": 404, "msg": "not found"})
        mode = self.path_modes.get(request.path, self.mode)
        if mode == "down":
            return None
        if mode == "hang":
            self.hang()
            return None
        if mode == "slow" and self.delay:
            time.sleep(self.delay)
        if request.headers.get("x-bridge-secret") != self.secret:
            return Reply(401, {"code": 401, "msg": "invalid bridge secret"})
        if mode == "status":
            return Reply(self.status_code, {"code": self.status_code, "msg": "unavailable"})
        if mode == "envelope":
            return Reply(200, {"code": self.envelope_code, "msg": self.envelope_msg})
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"code": 400, "msg": "body is not JSON"})
        if not isinstance(body, dict):
            return Reply(400, {"code": 400, "msg": "body is not an object"})
        if request.path == BALANCE_PATH:
            return self._balance(body)
        return self._entry(body)

    def _balance(self, body: dict[str, Any]) -> Reply:
        email = body.get("userEmail")
        with self.lock:
            balance = self.balances.get(email) if isinstance(email, str) else None
        if balance is None:
            return Reply(200, {"code": 500, "msg": "unknown user"})
        try:
            required = Decimal(str(body.get("requiredAmount", "0")))
        except InvalidOperation:
            return Reply(200, {"code": 400, "msg": "bad requiredAmount"})
        return Reply(
            200,
            {
                "code": 200,
                "msg": "ok",
                "data": {"sufficient": balance >= required, "balance": str(balance)},
            },
        )

    def _entry(self, body: dict[str, Any]) -> Reply:
        task_id = body.get("taskId")
        email = body.get("userEmail")
        cost_raw = body.get("cost")
        if not isinstance(task_id, str) or not task_id or not isinstance(cost_raw, str):
            return Reply(200, {"code": 400, "msg": "taskId and cost (string) are required"})
        if not isinstance(body.get("durationSec"), int):
            return Reply(200, {"code": 400, "msg": "durationSec must be an integer"})
        try:
            cost = Decimal(cost_raw)
        except InvalidOperation:
            return Reply(200, {"code": 400, "msg": "cost is not a decimal"})
        with self.lock:
            if task_id in self.entries:
                self.duplicates += 1
                return Reply(200, {"code": 200, "msg": "ok", "data": {"idempotent": True}})
            if not isinstance(email, str) or email not in self.balances:
                return Reply(200, {"code": 500, "msg": "unknown user"})
            self.balances[email] -= cost
            self.entries[task_id] = dict(body)
            balance = self.balances[email]
        return Reply(
            200,
            {"code": 200, "msg": "ok", "data": {"idempotent": False, "balance": str(balance)}},
        )
