"""`_http11`: the pooled transport's HTTP/1.1 codec, read from real byte streams.

Replies are fed as the chunks a socket could deliver them in (split at every byte,
or where hypothesis chooses); a differential test checks that what h11's server side
writes reads back the same. Hostile replies must fail with `Broken` or `TooLarge`,
never hang, never quote a header value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumid_core._http11 import MAX_HEAD_BYTES, RawReply, TooLarge, encode_request, read_reply
from lumid_core._wire import Broken

SECRET = b"s3cr3t-value-0123456789"


def _reader(chunks: Iterable[bytes]) -> Callable[[], Awaitable[bytes]]:
    pending = [c for c in chunks if c]

    async def read() -> bytes:
        return pending.pop(0) if pending else b""

    return read


async def _read(
    raw: bytes | list[bytes], cap: int = 1 << 20, head: bool = False
) -> tuple[RawReply, bool]:
    chunks = [raw] if isinstance(raw, bytes) else raw
    return await read_reply(_reader(chunks), cap, head_request=head)


def _split_everywhere(raw: bytes) -> Iterable[list[bytes]]:
    for i in range(len(raw) + 1):
        yield [raw[:i], raw[i:]]
    yield [raw[i : i + 1] for i in range(len(raw))]


SIMPLE = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'6;ext=1\r\n{"ok":\r\n4\r\ntrue\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
)


async def test_a_content_length_reply_reads_the_same_however_it_is_split() -> None:
    for chunks in _split_everywhere(SIMPLE):
        reply, reusable = await _read(chunks)
        assert reply.status == 200
        assert reply.body == b'{"ok":true}'
        assert (b"content-type", b"application/json") in reply.headers
        assert reusable


async def test_a_chunked_reply_reads_the_same_however_it_is_split() -> None:
    for chunks in _split_everywhere(CHUNKED):
        reply, reusable = await _read(chunks)
        assert (reply.status, reply.body, reusable) == (200, b'{"ok":true}', True)


async def test_thousands_of_tiny_chunks_in_one_read() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\nx\r\n" * 20_000
        + b"0\r\n\r\n"
        + SIMPLE  # the next reply, already received
    )
    reply, reusable = await _read(raw)
    assert reply.body == b"x" * 20_000
    assert not reusable  # bytes beyond the reply arrived


async def test_bare_lf_line_ends_and_a_missing_reason_are_accepted() -> None:
    reply, reusable = await _read(b"HTTP/1.1 201\nContent-Length: 2\n\nhi")
    assert (reply.status, reply.body, reusable) == (201, b"hi", True)


async def test_informational_replies_are_skipped_and_101_refused() -> None:
    reply, _ = await _read(b"HTTP/1.1 100 Continue\r\n\r\n" + SIMPLE)
    assert reply.status == 200
    with pytest.raises(Broken, match="switched protocols"):
        await _read(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")


async def test_bodiless_replies_read_nothing_whatever_their_length_says() -> None:
    for raw, head in (
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", True),
    ):
        reply, reusable = await _read(raw, head=head)
        assert (reply.body, reusable) == (b"", True)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nread until the peer closes",
        SIMPLE + b"HTTP/1.1 200 OK\r\n",  # unsolicited bytes after the reply
    ],
)
async def test_connections_that_cannot_carry_another_request(raw: bytes) -> None:
    _, reusable = await _read(raw)
    assert not reusable


async def test_a_reply_framed_by_the_close_is_read_to_the_end() -> None:
    reply, _ = await _read([b"HTTP/1.1 200 OK\r\n\r\nab", b"cd", b"ef"])
    assert reply.body == b"abcdef"


async def test_identical_repeated_lengths_are_one_length() -> None:
    reply, _ = await _read(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"
    )
    assert reply.body == b"ok"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
            "both",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", "header line"),
        (b"HTTP/2 200\r\n\r\n", "status line"),
        (b"ICY 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", "status code"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", "line end"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed during the reply"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed during the reply head"),
        (b"", "closed before a reply"),
    ],
)
async def test_replies_that_are_not_valid_http_are_broken(raw: bytes, why: str) -> None:
    with pytest.raises(Broken, match=why):
        await _read(raw)


async def test_an_endless_head_is_cut_off() -> None:
    endless = [b"HTTP/1.1 200 OK\r\n"] + [b"X-Pad: " + b"a" * 1000 + b"\r\n"] * 40
    with pytest.raises(Broken, match=f"over {MAX_HEAD_BYTES} bytes"):
        await _read(endless)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",  # refused on the declared length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n40\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101,
    ],
)
async def test_a_body_over_the_cap_is_refused(raw: bytes) -> None:
    with pytest.raises(TooLarge):
        await _read(raw, cap=100)


async def test_no_error_quotes_a_header_value() -> None:
    hostile = [
        b"HTTP/1.1 200 OK\r\nX-Echo: " + SECRET + b"\r\nBroken line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + SECRET + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + SECRET + b"\r\n\r\n",
    ]
    for raw in hostile:
        with pytest.raises(Broken) as failed:
            await _read(raw)
        assert SECRET.decode() not in str(failed.value)
    for name, value in ((b"x-secret", SECRET + b"\r\nX-Injected: 1"), (b"bad name", SECRET)):
        with pytest.raises(Broken) as refused:
            encode_request(b"GET", b"/", [(name, value)], b"")
        assert SECRET.decode() not in str(refused.value)


def test_a_request_is_written_in_one_piece() -> None:
    out = encode_request(b"POST", b"/x?a=1", [(b"host", b"h:1"), (b"content-length", b"2")], b"{}")
    assert out == b"POST /x?a=1 HTTP/1.1\r\nhost: h:1\r\ncontent-length: 2\r\n\r\n{}"
    for method, target in ((b"G T", b"/"), (b"GET", b"/a b"), (b"GET", b"")):
        with pytest.raises(Broken, match="method or path"):
            encode_request(method, target, [], b"")


_names = st.from_regex(rb"\A[a-z][a-z0-9-]{0,15}\Z").filter(
    lambda n: n not in (b"content-length", b"transfer-encoding", b"connection")
)
_values = st.from_regex(rb"\A[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?\Z")


@settings(max_examples=200, deadline=None)
@given(
    status=st.integers(200, 599).filter(lambda s: s not in (204, 304)),
    headers=st.lists(st.tuples(_names, _values), max_size=6),
    pieces=st.lists(st.binary(max_size=40), max_size=5),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
async def test_what_h11_writes_reads_back_the_same(
    status: int,
    headers: list[tuple[bytes, bytes]],
    pieces: list[bytes],
    chunked: bool,
    cuts: list[int],
) -> None:
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(server.next_event(), h11.Request)
    server.next_event()  # EndOfMessage
    body = b"".join(pieces)
    framing = (
        [(b"transfer-encoding", b"chunked")]
        if chunked
        else [(b"content-length", str(len(body)).encode())]
    )
    raw = server.send(h11.Response(status_code=status, headers=[*headers, *framing])) or b""
    for piece in pieces:
        if piece:
            raw += server.send(h11.Data(data=piece)) or b""
    raw += server.send(h11.EndOfMessage()) or b""
    at = sorted({min(c, len(raw)) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *at], [*at, len(raw)], strict=True)]
    reply, reusable = await _read(chunks)
    assert reply.status == status
    assert reply.body == body
    assert [h for h in reply.headers if h[0] not in (b"content-length", b"transfer-encoding")] == [
        (n, v) for n, v in headers
    ]
    assert reusable
