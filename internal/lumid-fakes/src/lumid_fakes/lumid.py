"""An emulator of lum.id's `POST /oauth/introspect`."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["FakeLumId", "new_pat"]


def new_pat() -> str:
    """A token shaped like a lum.id personal access token."""
    return "lm_pat_live_" + secrets.token_hex(32)


class FakeLumId(FakeServer):
    """Tokens map to introspection replies; unknown tokens are inactive.

    `mode` switches failure behaviour: "ok", "status" (reply `status_code`),
    "garbage" (non-JSON 200), "shape" (JSON of the wrong shape), "hang"
    (block until released), "drop" (close the connection without a reply), "raw"
    (200 with the bytes in `raw_body`, e.g. JSON nested 200,000 deep). How a reply
    is sent (dripping, huge) is the server's `delivery` (`lumid_fakes.hostile`).
    """

    name = "lum.id"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.mode = "ok"
        self.status_code = 500
        self.delay = 0.0
        self.raw_body = b""
        self.dynamic_tokens = False  # accept any token "user:<sub>" (benchmarks)
        self.dynamic_emails = False  # ... and report "<sub>@dynamic.test" as its email

    def add_token(
        self,
        sub: str,
        *,
        scopes: list[str] | None = None,
        email: str | None = None,
        role: str = "user",
        token: str | None = None,
        exp: float | None = None,
        scope_string_only: bool = False,
    ) -> str:
        token = token or new_pat()
        reply: dict[str, Any] = {
            "active": True,
            "sub": sub,
            "username": sub,
            "role": role,
            "token_type": "pat",
            "iat": int(time.time()),
            "exp": int(exp if exp is not None else time.time() + 3600),
            "source": "fake",
        }
        if email is not None:
            reply["email"] = email
        if scope_string_only:
            reply["scope"] = " ".join(scopes or [])
        else:
            reply["scopes"] = list(scopes or [])
            reply["scope"] = " ".join(scopes or [])
        self.tokens[token] = reply
        return token

    def revoke(self, token: str) -> None:
        self.tokens[token] = {"active": False, "reason": "revoked"}

    def introspections(self) -> int:
        return len(self.calls("/oauth/introspect"))

    def handle(self, request: Recorded) -> Reply | None:
        if request.path != "/oauth/introspect" or request.method != "POST":
            return Reply(404, {"error": "not found"})
        if self.delay:
            time.sleep(self.delay)
        if self.mode == "hang":
            self.hang()
            return None
        if self.mode == "drop":
            return None
        if self.mode == "status":
            return Reply(self.status_code, {"error": "unavailable"})
        if self.mode == "garbage":
            return Reply(200, raw=b"<html>gateway</html>", headers={"Content-Type": "text/html"})
        if self.mode == "shape":
            return Reply(200, ["active", True])
        if self.mode == "raw":
            return Reply(200, raw=self.raw_body)
        token = request.form().get("token", "")
        reply = self.tokens.get(token)
        if reply is None and self.dynamic_tokens and token.startswith("user:"):
            sub = token.removeprefix("user:").split(":", 1)[0]
            reply = {"active": True, "sub": sub, "role": "user", "scopes": ["flowmesh:read"]}
            if self.dynamic_emails:
                reply["email"] = f"{sub}@dynamic.test"
        return Reply(200, reply or {"active": False, "reason": "unknown token"})
