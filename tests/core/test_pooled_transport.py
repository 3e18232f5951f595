"""`exchange` on a `PooledClient`: keep-alive reuse, no reuse after failures, TLS, caps.

The upstream is a real loopback HTTP/1.1 server (h11 on asyncio streams) that counts
the connections it accepts and the requests it reads; each path asks for a behaviour.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lumid_core.http import (
    PooledClient,
    ReplyTooLarge,
    UpstreamTimeout,
    UpstreamUnreachable,
    exchange,
)

SECRET = "s3cr3t-header-value-0123456789"
CAP = 1024


@dataclass
class Upstream:
    """What the loopback server saw."""

    url: str = ""
    connections: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    closed_by_client: int = 0
    handlers: set[asyncio.Task[None]] = field(default_factory=set)


async def _serve(
    seen: Upstream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    seen.connections += 1
    if (task := asyncio.current_task()) is not None:
        seen.handlers.add(task)
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    seen.closed_by_client += 1
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return
            assert isinstance(event, h11.Request)
            path = event.target.decode()
            headers = {k.decode(): v.decode() for k, v in event.headers}
            body = b""
            while not isinstance(ev := conn.next_event(), h11.EndOfMessage):
                if ev is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(ev, h11.Data):
                    body += ev.data
            seen.requests.append((path, headers, body))
            if not await _reply(path, conn, writer):
                return
            conn.start_next_cycle()
    except (ConnectionError, h11.ProtocolError):
        return
    finally:
        writer.close()


async def _reply(path: str, conn: h11.Connection, writer: asyncio.StreamWriter) -> bool:
    """Write the reply `path` asks for; False when the server then hangs up."""
    payload = b'{"ok":true}'
    headers = [("Content-Length", str(len(payload)))]
    if path == "/slow":
        await asyncio.sleep(30)
    elif path == "/chunked":
        writer.write(
            conn.send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
        )
        for piece in (b'{"ok":', b"true", b"}"):
            writer.write(conn.send(h11.Data(data=piece)))
        writer.write(conn.send(h11.EndOfMessage()))
        return True
    elif path == "/big-declared":
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Length: {CAP * 100}\r\n\r\n".encode() + b"x" * CAP
        )
        await writer.drain()
        await asyncio.sleep(30)  # the client must give up on the declared length alone
    elif path == "/big-chunked":
        writer.write(
            conn.send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
        )
        for _ in range(10):
            writer.write(conn.send(h11.Data(data=b"x" * CAP)))
            await writer.drain()
        await asyncio.sleep(30)
    elif path == "/gzip":
        headers.append(("Content-Encoding", "gzip"))
    elif path == "/bad":
        writer.write(f"HTTP/1.1 200 OK\r\nX-Echo: {SECRET}\r\nBroken header line\r\n\r\n".encode())
        return False
    elif path == "/close":
        headers.append(("Connection", "close"))
    writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
    writer.write(conn.send(h11.Data(data=payload)) + (conn.send(h11.EndOfMessage()) or b""))
    await writer.drain()
    # "/hangup": a keep-alive reply, then the server closes the idle connection.
    return path not in ("/hangup", "/close")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen = Upstream()
    server = await asyncio.start_server(lambda r, w: _serve(seen, r, w), "127.0.0.1", 0)
    seen.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield seen
        for task in seen.handlers:  # the slow ones still sleep: stop them
            task.cancel()


@pytest.fixture
async def client() -> AsyncIterator[PooledClient]:
    pooled = PooledClient(4, timeout=5, headers={"User-Agent": "test", "X-Secret": SECRET})
    yield pooled
    await pooled.aclose()


async def _get(client: PooledClient, url: str, deadline: float = 5) -> bytes:
    reply = await exchange(client, "GET", url, deadline=deadline, max_bytes=CAP)
    assert reply.status == 200
    return reply.body


async def test_sequential_requests_share_one_kept_alive_connection(
    upstream: Upstream, client: PooledClient
) -> None:
    for i in range(5):
        reply = await exchange(
            client,
            "POST",
            f"{upstream.url}/ok?n={i}",
            deadline=5,
            max_bytes=CAP,
            data={"token": f"t{i}"},
        )
        assert reply.body == b'{"ok":true}'
        assert reply.headers["content-length"] == "11"
    await exchange(client, "POST", f"{upstream.url}/ok", deadline=5, max_bytes=CAP, json={"a": "é"})
    assert upstream.connections == 1
    path, headers, body = upstream.requests[0]
    assert (path, body) == ("/ok?n=0", b"token=t0")
    assert headers["host"] == upstream.url.removeprefix("http://")
    assert headers["accept-encoding"] == "identity"
    assert headers["user-agent"] == "test"
    assert headers["x-secret"] == SECRET
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert upstream.requests[-1][2] == '{"a":"é"}'.encode()
    assert upstream.requests[-1][1]["content-type"] == "application/json"


async def test_a_chunked_reply_is_read_whole_and_the_connection_reused(
    upstream: Upstream, client: PooledClient
) -> None:
    assert await _get(client, f"{upstream.url}/chunked") == b'{"ok":true}'
    assert await _get(client, f"{upstream.url}/ok") == b'{"ok":true}'
    assert upstream.connections == 1


async def test_connection_close_is_honoured(upstream: Upstream, client: PooledClient) -> None:
    await _get(client, f"{upstream.url}/close")
    await _get(client, f"{upstream.url}/ok")
    assert upstream.connections == 2
    assert client.pool.open_connections == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_resent(
    upstream: Upstream, client: PooledClient
) -> None:
    await _get(client, f"{upstream.url}/hangup")  # kept alive by the reply, then closed
    await asyncio.sleep(0.1)  # the close reaches the client while the connection idles
    assert await _get(client, f"{upstream.url}/ok") == b'{"ok":true}'
    assert upstream.connections == 2
    assert [p for p, _, _ in upstream.requests] == ["/hangup", "/ok"]  # each sent once


async def test_after_a_timeout_the_connection_is_not_reused(
    upstream: Upstream, client: PooledClient
) -> None:
    await _get(client, f"{upstream.url}/ok")
    with pytest.raises(UpstreamTimeout, match=r"no complete reply within 0\.3s"):
        await _get(client, f"{upstream.url}/slow", deadline=0.3)
    assert await _get(client, f"{upstream.url}/ok") == b'{"ok":true}'
    assert upstream.connections == 2
    assert upstream.closed_by_client >= 1 or client.pool.open_connections == 1


@pytest.mark.parametrize("path", ["/big-declared", "/big-chunked"])
async def test_a_reply_over_the_cap_is_refused_and_its_connection_dropped(
    upstream: Upstream, client: PooledClient, path: str
) -> None:
    async with asyncio.timeout(5):  # refused at once, not at the server's leisure
        with pytest.raises(ReplyTooLarge, match=f"over the {CAP}-byte cap"):
            await _get(client, f"{upstream.url}{path}")
    assert await _get(client, f"{upstream.url}/ok") == b'{"ok":true}'
    assert upstream.connections == 2


async def test_a_compressed_reply_is_refused(upstream: Upstream, client: PooledClient) -> None:
    with pytest.raises(UpstreamUnreachable, match="gzip-encoded though identity was asked"):
        await _get(client, f"{upstream.url}/gzip")


async def test_protocol_errors_never_quote_a_header_value(
    upstream: Upstream, client: PooledClient
) -> None:
    with pytest.raises(UpstreamUnreachable) as bad_reply:
        await _get(client, f"{upstream.url}/bad")
    assert "RemoteProtocolError" in str(bad_reply.value)
    assert SECRET not in str(bad_reply.value)
    with pytest.raises(UpstreamUnreachable) as bad_request:
        await exchange(
            client,
            "GET",
            f"{upstream.url}/ok",
            deadline=5,
            max_bytes=CAP,
            headers={"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"},
        )
    assert "LocalProtocolError" in str(bad_request.value)
    assert SECRET not in str(bad_request.value)
    assert not [r for r in upstream.requests if "x-injected" in r[1]]


async def test_connections_are_bounded(upstream: Upstream) -> None:
    pooled = PooledClient(2, timeout=5)
    try:
        bodies = await asyncio.gather(*(_get(pooled, f"{upstream.url}/chunked") for _ in range(20)))
    finally:
        await pooled.aclose()
    assert bodies == [b'{"ok":true}'] * 20
    assert upstream.connections <= 2


async def test_an_unreachable_upstream_is_a_connect_error() -> None:
    pooled = PooledClient(1, timeout=5)
    try:
        with pytest.raises(UpstreamUnreachable, match="ConnectError"):
            await _get(pooled, "http://127.0.0.1:9/ok")  # discard port: nothing listens
    finally:
        await pooled.aclose()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "UnsupportedProtocol"),
        ("http://[::1/x", "InvalidURL"),
        ("http://127.0.0.1:99999/x", "InvalidURL"),
        ("http://127.0.0.1/é", "InvalidURL"),
    ],
)
async def test_a_url_it_cannot_use_is_unreachable(
    client: PooledClient, url: str, reason: str
) -> None:
    with pytest.raises(UpstreamUnreachable, match=reason):
        await _get(client, url)
    assert client.pool.open_connections == 0


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (only) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_is_verified(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    seen = Upstream()
    server = await asyncio.start_server(
        lambda r, w: _serve(seen, r, w), "127.0.0.1", 0, ssl=server_context
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        untrusting = PooledClient(1, timeout=5)
        try:
            with pytest.raises(UpstreamUnreachable, match="certificate verify failed"):
                await _get(untrusting, f"https://localhost:{port}/ok")
        finally:
            await untrusting.aclose()
        assert not seen.requests  # nothing was sent to a server not proven genuine
        trusting = PooledClient(1, timeout=5, ssl_context=ssl.create_default_context(cafile=cert))
        try:
            for _ in range(3):
                assert await _get(trusting, f"https://localhost:{port}/ok") == b'{"ok":true}'
            with pytest.raises(UpstreamUnreachable, match="certificate verify failed"):
                # The same server, but the certificate names localhost, not this address.
                await _get(trusting, f"https://127.0.0.1:{port}/ok")
        finally:
            await trusting.aclose()
        for task in seen.handlers:
            task.cancel()
    assert seen.connections >= 1
    assert seen.requests[0][1]["host"] == f"localhost:{port}"
    assert len(seen.requests) == 3
