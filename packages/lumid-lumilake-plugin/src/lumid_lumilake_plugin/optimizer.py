"""The remote optimizer: another Lumilake's optimizers offered by this one.

The catalog (`GET {url}/api/v1/optimizer` -> `{"types": [...]}`) is fetched once,
with `LUMILAKE_RUNTIME_TOKEN` as the bearer when it is set; that is the only
request the service credential is ever sent with. Each schedule is a
`lumilake_hook.RemoteOptimizer` posting to `{url}/api/v1/optimizer/schedule` with
the submitter's bearer from `lumilake_hook.runtime_token_var`. Each request has
one deadline for the whole exchange and a cap on its reply (`lumid_core.http`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

import httpx
from lumilake_hook import OptimizerHandle, RemoteOptimizer, Schedule, runtime_token_var

from lumid_core.http import UpstreamError, UpstreamReply, exchange, exchange_blocking

from .settings import LumilakeSettings

__all__ = [
    "CATALOG_PATH",
    "SCHEDULE_PATH",
    "CatalogError",
    "RemoteOptimizerProvider",
    "fetch_optimizer_catalog",
    "fetch_optimizer_catalog_sync",
    "parse_catalog",
]

CATALOG_PATH: Final = "/api/v1/optimizer"
SCHEDULE_PATH: Final = "/api/v1/optimizer/schedule"
_MAX_TYPES: Final = 1000
_MAX_NAME: Final = 200
_RETRY_SECONDS: Final = 30.0


class CatalogError(UpstreamError):
    """The remote optimizer's catalog could not be fetched or understood.

    `variable` is the setting to look at (the URL, or the token on a 401/403).
    """

    def __init__(self, reason: str, variable: str = "LUMILAKE_REMOTE_OPTIMIZER_URL") -> None:
        """`reason` never holds the token."""
        super().__init__(reason)
        self.variable = variable


def parse_catalog(body: Any) -> list[str]:
    """The optimizer names of a catalog reply, first spelling of each name kept."""
    if not isinstance(body, dict) or not isinstance(body.get("types"), list):
        raise CatalogError('reply is not a JSON object with a "types" list')
    types: list[Any] = body["types"]
    if len(types) > _MAX_TYPES:
        raise CatalogError(f"reply lists {len(types)} types (more than {_MAX_TYPES})")
    names: list[str] = []
    seen: set[str] = set()
    for item in types:
        if (
            not isinstance(item, str)
            or not item.strip()
            or len(item) > _MAX_NAME
            or not item.isprintable()  # names are logged and printed by `lumid doctor`
        ):
            raise CatalogError('"types" holds something other than short printable names')
        name = item.strip()
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


def _headers(settings: LumilakeSettings) -> dict[str, str]:
    token = settings.lumilake_runtime_token
    if token is None or not token.get_secret_value():
        return {}
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def _catalog_url(settings: LumilakeSettings) -> str:
    base = settings.lumilake_remote_optimizer_url
    if base is None:
        raise CatalogError("LUMILAKE_REMOTE_OPTIMIZER_URL is not set")
    return base + CATALOG_PATH


def _reply(reply: UpstreamReply) -> list[str]:
    if reply.status != 200:
        if reply.status in (401, 403):
            raise CatalogError(
                f"HTTP {reply.status} (check LUMILAKE_RUNTIME_TOKEN)", "LUMILAKE_RUNTIME_TOKEN"
            )
        raise CatalogError(f"HTTP {reply.status}")
    try:
        body = json.loads(reply.body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise CatalogError("reply is not JSON") from None
    return parse_catalog(body)


async def fetch_optimizer_catalog(
    settings: LumilakeSettings, client: httpx.AsyncClient | None = None
) -> list[str]:
    """Fetch the remote catalog; raises `CatalogError` saying why it could not.

    `client` is reused when given (the plugin passes its pooled client); otherwise
    a short-lived one is opened. Used by install() and by `lumid doctor`.
    """
    url = _catalog_url(settings)
    timeout = settings.lumilake_optimizer_catalog_timeout_seconds
    cap = settings.lumid_max_reply_bytes
    try:
        if client is not None:
            reply = await exchange(
                client,
                "GET",
                url,
                deadline=timeout,
                max_bytes=cap,
                headers=_headers(settings),
                timeout=timeout,
            )
        else:
            async with httpx.AsyncClient(
                trust_env=False, follow_redirects=False, timeout=timeout
            ) as own:
                reply = await exchange(
                    own, "GET", url, deadline=timeout, max_bytes=cap, headers=_headers(settings)
                )
    except UpstreamError as exc:
        raise CatalogError(str(exc)) from None
    return _reply(reply)


def fetch_optimizer_catalog_sync(settings: LumilakeSettings) -> list[str]:
    """`fetch_optimizer_catalog` for synchronous callers (Lumilake's job subprocess)."""
    try:
        reply = exchange_blocking(
            "GET",
            _catalog_url(settings),
            headers=_headers(settings),
            deadline=settings.lumilake_optimizer_catalog_timeout_seconds,
            max_bytes=settings.lumid_max_reply_bytes,
        )
    except UpstreamError as exc:
        raise CatalogError(str(exc)) from None
    return _reply(reply)


class _DirectRemoteOptimizer(RemoteOptimizer):
    """`RemoteOptimizer` whose request ignores proxy and netrc environment variables.

    The upstream handle posts with `httpx.post`, which honours `HTTP(S)_PROXY` /
    `ALL_PROXY` and `.netrc`: the submitter's bearer could then reach a proxy (in
    clear text for an `http://` loopback URL). Same request, no env; the timeout is
    one deadline for the whole exchange and the reply is capped at `max_reply_bytes`
    (past either: `lumid_core.http.UpstreamError`, a RuntimeError; a non-2xx status
    is still `httpx.HTTPStatusError`).
    """

    def __init__(
        self,
        *,
        base_url: str,
        optimizer_type: str,
        http_timeout_seconds: float,
        max_reply_bytes: int,
    ) -> None:
        super().__init__(
            base_url=base_url,
            optimizer_type=optimizer_type,
            http_timeout_seconds=http_timeout_seconds,
        )
        self._url = base_url + SCHEDULE_PATH
        self._type = optimizer_type
        self._timeout = http_timeout_seconds
        self._max_reply = max_reply_bytes

    def __repr__(self) -> str:
        return f"RemoteOptimizer(url={self._url!r}, optimizer_type={self._type!r})"

    def generate_schedule(
        self,
        graph: Any,
        worker_names: list[str],
        worker_profiles: dict[str, dict[str, Any]],
        data_profile_results: dict[str, list[dict[str, Any]]] | None = None,
    ) -> Schedule:
        serialize = getattr(graph, "serialize", None)
        if not callable(serialize):
            raise TypeError("RemoteOptimizer.generate_schedule expects graph.serialize()")
        body = {
            "graph": serialize(),
            "worker_names": worker_names,
            "worker_profiles": worker_profiles,
            "data_profile_results": data_profile_results,
            "optimizer_type": self._type,
        }
        headers = {"Content-Type": "application/json"}
        bearer = runtime_token_var.get()
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        reply = exchange_blocking(
            "POST",
            self._url,
            deadline=self._timeout,
            max_bytes=self._max_reply,
            json=body,
            headers=headers,
        )
        if not 200 <= reply.status < 300:
            request = httpx.Request("POST", self._url)
            httpx.Response(reply.status, request=request).raise_for_status()
        try:
            decoded = json.loads(reply.body)
        except (ValueError, RecursionError):
            raise RuntimeError("Remote optimizer reply is not JSON") from None
        assignment = decoded.get("worker_assignment") if isinstance(decoded, dict) else None
        if not isinstance(assignment, dict):
            raise RuntimeError("Remote optimizer response missing worker_assignment dict")
        return Schedule(worker_assignment=assignment)


class RemoteOptimizerProvider:
    """`lumilake_hook.OptimizerProvider` over a cached remote catalog.

    Built with the catalog fetched at install, or with `settings` only (the
    un-entered `install()` result used as plain bindings): then the catalog is
    fetched on the first lookup, and a failure is retried at most every 30 s.
    """

    def __init__(
        self,
        *,
        name: str,
        settings: LumilakeSettings,
        catalog: Iterable[str] | None,
        logger: logging.Logger,
    ) -> None:
        base = settings.lumilake_remote_optimizer_url
        if base is None:
            raise ValueError("LUMILAKE_REMOTE_OPTIMIZER_URL is not set")
        self.name = name
        self.base_url = base
        self._settings = settings
        self._timeout = settings.lumilake_remote_optimizer_timeout_seconds
        self._logger = logger
        self._lock = threading.Lock()
        self._next_try = 0.0
        self._names: list[str] = []
        self._by_lower: dict[str, str] = {}
        self._loaded = False
        if catalog is not None:
            self._set(catalog)

    def __repr__(self) -> str:
        return f"RemoteOptimizerProvider(name={self.name!r}, url={self.base_url!r})"

    def _set(self, names: Iterable[str]) -> None:
        self._names = list(names)
        self._by_lower = {n.lower(): n for n in self._names}
        self._loaded = True

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded or time.monotonic() < self._next_try:
                return
            try:
                self._set(fetch_optimizer_catalog_sync(self._settings))
            except CatalogError as exc:
                self._next_try = time.monotonic() + _RETRY_SECONDS
                self._logger.error(
                    "%s: remote optimizer catalog at %s unavailable: %s",
                    self.name,
                    self.base_url + CATALOG_PATH,
                    exc,
                )

    def list_optimizers(self) -> list[str]:
        """The remote catalog's optimizer names (fetched once, then cached)."""
        self._ensure_loaded()
        return list(self._names)

    def create_optimizer(self, optimizer_type: str, **kwargs: Any) -> OptimizerHandle:
        """A handle scheduling on the remote service, matched case-insensitively.

        Extra keyword arguments (e.g. `logger=`) are accepted and ignored.
        """
        del kwargs  # e.g. logger=: the remote service does the work
        self._ensure_loaded()
        original = self._by_lower.get(optimizer_type.lower())
        if original is None:
            advertised = ", ".join(sorted(self._names)) or "nothing"
            raise ValueError(
                f"unknown optimizer {optimizer_type!r}: the remote optimizer at "
                f"{self.base_url} advertises {advertised}"
            )
        return _DirectRemoteOptimizer(
            base_url=self.base_url,
            optimizer_type=original,
            http_timeout_seconds=self._timeout,
            max_reply_bytes=self._settings.lumilake_remote_optimizer_max_reply_bytes,
        )
