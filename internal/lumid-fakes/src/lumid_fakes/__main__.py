"""Run one emulator in its own process: `python -m lumid_fakes lumid|runmesh [options]`.

Prints one JSON line on stdout once the server listens (`{"name", "url", "port",
"pid", "server"}`), then serves until its stdin closes or it gets SIGTERM/SIGINT.
`GET /_fake/stats` answers `{"requests": n, "paths": {path: n}}` (stats requests
themselves are not counted). Loopback only: the host must be a 127.x address.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from .aio import STATS_PATH, AsyncioFakeServer
from .hostile import DELIVERIES
from .lumid import FakeLumId
from .runmesh import FakeRunmesh
from .server import FakeServer, Recorded, Reply

__all__ = ["build_fake", "main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lumid_fakes", description=__doc__)
    p.add_argument("fake", choices=("lumid", "runmesh"), help="which emulator to run")
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument(
        "--server",
        choices=("asyncio", "threaded"),
        default="asyncio",
        help="asyncio: one event loop, fastest (no hang/delay modes); "
        "threaded: the stdlib FakeServer, a thread per connection",
    )
    p.add_argument("--record", action="store_true", help="asyncio server: keep every request")
    p.add_argument(
        "--dynamic-tokens",
        action="store_true",
        help="lumid: accept any token 'user:<sub>[:...]' as an active user",
    )
    p.add_argument(
        "--dynamic-emails",
        action="store_true",
        help="lumid: dynamic tokens' replies carry the email '<sub>@dynamic.test'",
    )
    p.add_argument("--mode", default="ok", help="the fake's failure mode (see its docstring)")
    p.add_argument(
        "--delivery",
        choices=DELIVERIES,
        default="normal",
        help="threaded server: how replies are sent (lumid_fakes.hostile)",
    )
    p.add_argument("--secret", default=None, help="runmesh: the X-Bridge-Secret it accepts")
    p.add_argument(
        "--user", action="append", default=[], help="runmesh: a known user email (repeatable)"
    )
    return p


def build_fake(args: argparse.Namespace) -> FakeServer:
    """The emulator the arguments describe (its own threaded server not started)."""
    fake: FakeServer
    if args.fake == "lumid":
        lumid = FakeLumId(args.host, 0 if args.server == "asyncio" else args.port)
        lumid.dynamic_tokens = bool(args.dynamic_tokens)
        lumid.dynamic_emails = bool(args.dynamic_emails)
        lumid.mode = args.mode
        fake = lumid
    else:
        runmesh = FakeRunmesh(args.secret, args.host, 0 if args.server == "asyncio" else args.port)
        runmesh.mode = args.mode
        for email in args.user:
            runmesh.add_user(email, "1000000")
        fake = runmesh
    fake.delivery = args.delivery
    return fake


def _announce(name: str, host: str, port: int, server: str) -> None:
    url = f"http://{host}:{port}"
    line = {"name": name, "url": url, "port": port, "pid": os.getpid(), "server": server}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _on_stdin_eof(callback: Callable[[], object]) -> None:
    def watch() -> None:
        try:
            while sys.stdin.read(65536):
                pass
        finally:
            callback()

    threading.Thread(target=watch, daemon=True, name="stdin-watch").start()


async def _serve_asyncio(fake: FakeServer, args: argparse.Namespace) -> None:
    fake._httpd.server_close()  # only its handle() is used: free the stdlib listener
    server = AsyncioFakeServer(fake, args.host, args.port, record=bool(args.record))
    await server.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    _on_stdin_eof(lambda: loop.call_soon_threadsafe(done.set))
    _announce(fake.name, args.host, server.port, "asyncio")
    await done.wait()
    await server.close()


def _serve_threaded(fake: FakeServer, args: argparse.Namespace) -> None:
    counts: Counter[str] = Counter()
    inner = fake.handle

    def handle(request: Recorded) -> Reply | None:
        if request.path == STATS_PATH:
            return Reply(200, {"requests": sum(counts.values()), "paths": dict(counts)})
        with fake.lock:
            counts[request.path] += 1
        return inner(request)

    setattr(fake, "handle", handle)  # noqa: B010 (instance override of the method)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    _on_stdin_eof(done.set)
    fake.start()
    _announce(fake.name, args.host, fake.port, "threaded")
    done.wait()
    fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not str(args.host).startswith("127."):
        _parser().error("--host must be a loopback address (127.x)")
    if args.delivery != "normal" and args.server != "threaded":
        _parser().error("--delivery needs --server threaded")
    fake = build_fake(args)
    if args.server == "asyncio":
        asyncio.run(_serve_asyncio(fake, args))
    else:
        _serve_threaded(fake, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
