"""An event loop on its own daemon thread, for servers that must outlive the cell that made them.

The kernel's loop cannot host a server: it stops turning whenever a cell blocks, and
``asyncio.run`` inside a cell fails. (``transports.http.loop`` has the same class; importing it
would load aiohttp, which the gRPC server does not need.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ("LoopThread",)

T = TypeVar("T")


class LoopThread:
    """A running event loop in a daemon thread; :meth:`stop` cancels what is left and joins."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block this thread until it returns (or raise)."""
        if threading.get_ident() == self._thread.ident:
            coro.close()
            raise RuntimeError(f"{self._thread.name}: cannot block on the loop from its own thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the loop's remaining tasks, stop it, join the thread and close the loop."""
        if not self.running:
            return
        try:
            self.run(_cancel_rest(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()


async def _cancel_rest() -> None:
    current = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
