"""The HTTP/1.1 client codec of the pooled transport: one request out, one reply in.

Only what `_transport` needs, per RFC 9112: a request is written in one piece
(`encode_request`, which refuses a method, target, header name or value it may not
send); a reply is read by `read_reply` over any `read()` coroutine that returns the
bytes received so far (b"" once the peer is done). Framing follows RFC 9112 §6.3:
1xx replies are skipped (101 is refused: no upgrade was asked for), 204 and 304
have no body, `Transfer-Encoding: chunked` is read chunk by chunk, a single
`Content-Length` (repeated identically at most) is read exactly, and a reply with
neither is read until the peer closes. Anything else is `Broken`: another transfer
coding, both headers, conflicting lengths, a bad status line, an obsolete folded
header, a head over `MAX_HEAD_BYTES`. A reply's body never grows past `max_bytes`
(`TooLarge`, noticed on the declared length or as the bytes arrive).

No message ever quotes a header value (a credential may be one); the per-request CPU
is a fraction of a general-purpose state machine's (docs/performance.md).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from ._wire import Broken

__all__ = [
    "MAX_HEAD_BYTES",
    "Broken",
    "Headers",
    "RawReply",
    "TooLarge",
    "encode_request",
    "read_reply",
]

MAX_HEAD_BYTES: Final = 16 * 1024
"""The largest reply head (status line and headers) or chunk line/trailer block read."""

Headers = list[tuple[bytes, bytes]]
Read = Callable[[], Awaitable[bytes]]

_TOKEN: Final = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")
_TARGET: Final = re.compile(rb"[\x21-\x7e]+")
_STATUS: Final = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: [\t \x21-\x7e\x80-\xff]*)?")
_FIELD: Final = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):[ \t]*([^\x00\r\n]*?)[ \t]*")
_CHUNK: Final = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")
_NO_BODY: Final = frozenset((204, 304))


class TooLarge(Exception):
    """The reply body is larger than the cap (declared, or counted as it arrived)."""


@dataclass(frozen=True, slots=True)
class RawReply:
    """A complete reply: status, its (lower-cased) header list and the body."""

    status: int
    headers: Headers
    body: bytes


def encode_request(method: bytes, target: bytes, headers: Headers, body: bytes) -> bytes:
    """The bytes of one request; `headers` must already hold Host and any length.

    Raises `Broken` naming what is wrong, never the offending value.
    """
    if _TOKEN.fullmatch(method) is None or _TARGET.fullmatch(target) is None:
        raise Broken("LocalProtocolError: the request has an invalid method or path")
    out = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _BAD_VALUE.search(value) is not None:
            raise Broken("LocalProtocolError: the request has an invalid header")
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    if body:
        out.append(body)
    return b"".join(out)


class _Buffer:
    """Bytes received and not yet consumed (`data[pos:]`), refilled from `read`.

    Consuming moves `pos` and never copies what is left, so a reply of many tiny
    chunks costs time in proportion to its size (a refill copies only the unconsumed
    tail, which is at most one head or line when it happens).
    """

    __slots__ = ("data", "ended", "pos", "read")

    def __init__(self, read: Read) -> None:
        self.read = read
        self.data = b""
        self.pos = 0
        self.ended = False

    @property
    def left(self) -> int:
        """How many received bytes are not consumed yet."""
        return len(self.data) - self.pos

    async def more(self, what: str) -> None:
        """Read more bytes onto the unconsumed ones; `Broken` when the peer is done."""
        chunk = await self.read()
        if not chunk:
            self.ended = True
            raise Broken(f"RemoteProtocolError: connection closed {what}")
        self.data = self.data[self.pos :] + chunk if self.left else chunk
        self.pos = 0

    def take(self, n: int) -> bytes:
        """The next `n` unconsumed bytes (all of them there), consumed."""
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    async def block(self, what: str) -> bytes:
        """Everything up to an empty line (CRLF or bare LF endings), consumed."""
        searched = 0  # bytes past pos already searched for the end
        while True:
            data, pos = self.data, self.pos
            if data.startswith(b"\n", pos):  # an empty block
                self.pos += 1
                return b""
            if data.startswith(b"\r\n", pos):
                self.pos += 2
                return b""
            start = pos + max(0, searched - 2)
            end = data.find(b"\n\r\n", start)
            bare = data.find(b"\n\n", start)
            if bare != -1 and (end == -1 or bare < end):
                self.pos = bare + 2
                return data[pos : bare + 1]
            if end != -1:
                self.pos = end + 3
                return data[pos : end + 1]
            if self.left > MAX_HEAD_BYTES:
                raise Broken(f"RemoteProtocolError: reply {what} over {MAX_HEAD_BYTES} bytes")
            searched = self.left
            await self.more(f"during the reply {what}")

    async def exact(self, length: int) -> bytes:
        """The next `length` bytes, consumed (gathered without re-copying)."""
        if self.left >= length:
            return self.take(length)
        parts = [self.data[self.pos :]] if self.left else []
        have = self.left
        self.data, self.pos = b"", 0
        while have < length:
            chunk = await self.read()
            if not chunk:
                self.ended = True
                raise Broken("RemoteProtocolError: connection closed during the reply")
            parts.append(chunk)
            have += len(chunk)
        self.data = b"".join(parts)
        return self.take(length)

    async def line(self) -> bytes:
        """One line without its ending, consumed."""
        while (end := self.data.find(b"\n", self.pos)) == -1:
            if self.left > MAX_HEAD_BYTES:
                raise Broken(f"RemoteProtocolError: a chunk line over {MAX_HEAD_BYTES} bytes")
            await self.more("during a chunked reply")
        line = self.data[self.pos : end]
        self.pos = end + 1
        return line[:-1] if line.endswith(b"\r") else line

    async def line_end(self) -> None:
        """Consume the CRLF (or bare LF) that must follow a chunk's data."""
        while not self.left or (self.left < 2 and self.data.startswith(b"\r", self.pos)):
            await self.more("during a chunked reply")
        if self.data.startswith(b"\r\n", self.pos):
            self.pos += 2
        elif self.data.startswith(b"\n", self.pos):
            self.pos += 1
        else:
            raise Broken("RemoteProtocolError: a chunk is not followed by a line end")

    def rest(self) -> bytes:
        """Every unconsumed byte, consumed."""
        out = self.data[self.pos :]
        self.data, self.pos = b"", 0
        return out


def _lines(block: bytes) -> list[bytes]:
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _head(block: bytes) -> tuple[int, int, Headers]:
    """(minor version, status, lower-cased headers) of a reply head."""
    lines = _lines(block)
    if not lines:
        raise Broken("RemoteProtocolError: the reply is not valid HTTP/1.1")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise Broken("RemoteProtocolError: the reply has no valid HTTP/1.x status line")
    headers: Headers = []
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:  # also an obsolete folded line (it starts with a space)
            raise Broken("RemoteProtocolError: the reply has an invalid header line")
        headers.append((field[1].lower(), field[2]))
    return int(status[1]), int(status[2]), headers


def _tokens(headers: Headers, name: bytes) -> list[bytes]:
    return [
        item.strip().lower()
        for key, value in headers
        if key == name
        for item in value.split(b",")
        if item.strip()
    ]


def _length(headers: Headers) -> int | None:
    values = {
        item.strip()
        for key, value in headers
        if key == b"content-length"
        for item in value.split(b",")
    }
    if not values:
        return None
    if len(values) != 1 or not (only := values.pop()).isdigit() or len(only) > 18:
        raise Broken("RemoteProtocolError: the reply has an invalid Content-Length")
    return int(only)


async def read_reply(
    read: Read, max_bytes: int, *, head_request: bool = False
) -> tuple[RawReply, bool]:
    """Read one complete reply; also whether the connection may carry another request.

    It may not when the reply said `Connection: close`, was HTTP/1.0, was framed by
    the close, or when bytes beyond the reply already arrived.
    """
    buf = _Buffer(read)
    while True:
        try:
            block = await buf.block("head")
        except Broken:
            if buf.ended and not buf.left:
                raise Broken("RemoteProtocolError: connection closed before a reply") from None
            raise
        if not block:  # RFC 9112 §2.2: an empty line before the status line is skipped
            continue
        minor, status, headers = _head(block)
        if status == 101:
            raise Broken("RemoteProtocolError: the server switched protocols unasked")
        if status >= 200:
            break
        if status < 100:
            raise Broken("RemoteProtocolError: the reply has an invalid status code")
    keep = minor >= 1 and b"close" not in _tokens(headers, b"connection")
    coding = _tokens(headers, b"transfer-encoding")
    length = _length(headers)
    if head_request or status in _NO_BODY:
        body = b""
    elif coding:
        if coding != [b"chunked"]:
            raise Broken("RemoteProtocolError: the reply uses a transfer coding other than chunked")
        if length is not None:
            raise Broken(
                "RemoteProtocolError: the reply has both Transfer-Encoding and Content-Length"
            )
        body = await _chunked(buf, max_bytes)
    elif length is not None:
        if length > max_bytes:
            raise TooLarge(f"reply of {length} bytes is over the {max_bytes}-byte cap")
        body = await buf.exact(length)
    else:
        body = await _until_closed(buf, max_bytes)
        keep = False
    return RawReply(status, headers, body), keep and not buf.left


async def _chunked(buf: _Buffer, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        line = await buf.line()
        chunk = _CHUNK.fullmatch(line)
        if chunk is None:
            raise Broken("RemoteProtocolError: the reply has an invalid chunk size line")
        n = int(chunk[1], 16)
        if n == 0:
            await buf.block("trailer")
            return b"".join(parts)
        size += n
        if size > max_bytes:
            raise TooLarge(f"reply is over the {max_bytes}-byte cap")
        parts.append(await buf.exact(n))
        await buf.line_end()


async def _until_closed(buf: _Buffer, max_bytes: int) -> bytes:
    first = buf.rest()
    parts = [first] if first else []
    size = len(first)
    while True:
        if size > max_bytes:
            raise TooLarge(f"reply is over the {max_bytes}-byte cap")
        chunk = await buf.read()
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
