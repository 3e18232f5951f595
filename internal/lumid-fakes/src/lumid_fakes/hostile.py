"""Hostile ways to deliver a reply: dripping bytes and bodies too large to hold.

Every emulator on the threaded `FakeServer` can misbehave this way (its `delivery`
attribute, or `delivery_paths` per path): tests aim a client's deadline and body
cap at them. Deliveries:

- "normal": the reply in one write;
- "drip-body": the headers at once, then the body one byte every `drip_seconds`;
- "drip-headers": the status line and headers one byte every `drip_seconds`, then
  the body;
- "huge": a valid JSON object of `huge_bytes` bytes, streamed chunked (no
  Content-Length), never built in memory;
- "huge-declared": the same with its Content-Length announced up front.

A delivery stops as soon as the client goes away or the fake is stopped.
"""

from __future__ import annotations

import threading
from io import BufferedIOBase
from typing import Final

__all__ = ["DELIVERIES", "deliver"]

DELIVERIES: Final = ("normal", "drip-body", "drip-headers", "huge", "huge-declared")
_CHUNK: Final = b"x" * (1 << 20)
_HEAD: Final = b'{"active": false, "pad": "'
_TAIL: Final = b'"}'


def deliver(
    out: BufferedIOBase,
    delivery: str,
    head: bytes,
    payload: bytes,
    *,
    stop: threading.Event,
    drip_seconds: float,
    huge_bytes: int,
) -> None:
    """Write `head` (status line + headers, without Content-Length and the blank
    line) and a body to `out` the way `delivery` says; return when done or cut off."""
    try:
        if delivery == "drip-headers":
            whole = head + f"Content-Length: {len(payload)}\r\n\r\n".encode("latin-1")
            for i in range(len(whole)):
                out.write(whole[i : i + 1])
                if stop.wait(drip_seconds):
                    return
            out.write(payload)
        elif delivery == "drip-body":
            out.write(head + f"Content-Length: {len(payload)}\r\n\r\n".encode("latin-1"))
            for i in range(len(payload)):
                if stop.wait(drip_seconds):
                    return
                out.write(payload[i : i + 1])
        elif delivery in ("huge", "huge-declared"):
            _huge(out, head, chunked=delivery == "huge", size=huge_bytes, stop=stop)
        else:
            out.write(head + f"Content-Length: {len(payload)}\r\n\r\n".encode("latin-1") + payload)
    except OSError:  # the client went away (it gave up, as it should)
        return


def _huge(
    out: BufferedIOBase, head: bytes, *, chunked: bool, size: int, stop: threading.Event
) -> None:
    pad = max(0, size - len(_HEAD) - len(_TAIL))
    if chunked:
        out.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
    else:
        out.write(head + f"Content-Length: {len(_HEAD) + pad + len(_TAIL)}\r\n\r\n".encode())

    def part(data: bytes) -> None:
        if chunked:
            out.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            out.write(data)

    part(_HEAD)
    while pad > 0 and not stop.is_set():
        piece = _CHUNK if pad >= len(_CHUNK) else _CHUNK[:pad]
        part(piece)
        pad -= len(piece)
    part(_TAIL)
    if chunked:
        out.write(b"0\r\n\r\n")
