"""``HttpServer``: an aiohttp application served on its own loop thread, with drain and close.

Both HTTP faces of spawn_lab (the proxy API and the user-function endpoint) run this way, so they
start from a notebook cell, a script or the CLI alike, and stop cleanly: ``close()`` first marks
the server draining (readiness turns 503, new calls are refused), then lets requests in flight
finish, then closes client pools and the loop.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from spawn_lab.transports.loop import LoopThread

__all__ = ("HttpServer", "ServerState")


@dataclass
class ServerState:
    """What the server's handlers and its owner share."""

    draining: bool = False


class HttpServer:
    """A running HTTP server. ``url`` is where it listens; ``close()`` stops it (idempotent)."""

    def __init__(
        self,
        make_app: Callable[[ServerState], web.Application],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "spawn-lab-http",
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.state = ServerState()
        self.host = host
        self._thread = LoopThread(name)
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._closed = False
        try:
            self.app, self.port = self._thread.run(self._start(make_app, host, port), 30)
        except BaseException:
            self._thread.stop()
            raise

    async def _start(
        self, make_app: Callable[[ServerState], web.Application], host: str, port: int
    ) -> tuple[web.Application, int]:
        app = make_app(self.state)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        self._runner = runner
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.setblocking(False)
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            raise
        bound = int(sock.getsockname()[1])
        return app, bound

    @property
    def loop(self) -> LoopThread:
        return self._thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def drain(self) -> None:
        """Refuse new calls (readiness answers 503) but keep serving what is in flight."""
        self.state.draining = True

    def close(self) -> None:
        """Drain, stop listening, let running requests finish, run the app's cleanups, stop."""
        if self._closed:
            return
        self._closed = True
        self.drain()
        try:
            if self._runner is not None and self._thread.running:
                self._thread.run(self._runner.cleanup(), self._shutdown_timeout + 5)
        finally:
            self._thread.stop()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> HttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("draining" if self.state.draining else "serving")
        return f"<HttpServer {self.url} {status}>"
