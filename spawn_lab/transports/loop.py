"""An event loop on its own daemon thread, so servers and clients outlive the cell that made them.

A notebook's kernel already runs a loop, and ``asyncio.run`` inside a cell fails; a server that
ran on the kernel's loop would also stop answering whenever a cell blocks. So each server (the
HTTP proxy, the gRPC server) gets a loop of its own, and blocking callers talk to it through
:meth:`LoopThread.run`. This module imports neither aiohttp nor grpc.
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

    def in_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block this thread until it returns (or raise)."""
        if self.in_thread():
            coro.close()
            raise RuntimeError(f"{self._thread.name}: cannot block on the loop from its own thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the loop's remaining tasks, stop it, join the thread and close the loop."""
        if not self.running:
            return
        try:
            self.run(self._cancel_rest(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()

    async def _cancel_rest(self) -> None:
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
