"""Reply handles: how an answer computed on one thread reaches an asker on another.

Each is answered at most once: the first ``resolve`` wins (a reply or a timeout), which is how
"every ask is answered exactly once" holds even when a timeout races a late reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import cast

from spawn_lab.core.errors import InvocationTimeoutError
from spawn_lab.core.model import NOOP

__all__ = ("AsyncWaiter", "SyncWaiter")


class SyncWaiter:
    """For a blocking caller: a lock made only if the caller must block, which ``resolve`` releases.

    A caller that ran the handler itself finds the answer already there and never makes one.
    """

    __slots__ = ("_done", "_lock", "_token", "error", "ok", "value")

    def __init__(self) -> None:
        self._token = [True]
        self._lock: threading.Lock | None = None
        self._done = False
        self.ok = False
        self.value: object = NOOP
        self.error: BaseException | None = None

    def resolve(self, ok: bool, value: object, error: BaseException | None) -> bool:
        """Record the answer; False if it was already answered."""
        try:
            self._token.pop()
        except IndexError:
            return False
        self.ok, self.value, self.error = ok, value, error
        self._done = True  # written before reading _lock; wait() writes _lock before reading _done
        lock = self._lock
        if lock is not None:
            lock.release()
        return True

    def wait(self, timeout: float | None, what: str) -> object:
        """Block until answered or ``timeout`` seconds pass; return the value or raise."""
        if not self._done:
            lock = threading.Lock()
            lock.acquire()
            self._lock = lock
            if not self._done and not lock.acquire(timeout=-1 if timeout is None else timeout):
                self.resolve(
                    False, NOOP, InvocationTimeoutError(f"{what}: no answer within {timeout} s")
                )
                lock.acquire()
        if self.ok:
            return self.value
        raise cast(BaseException, self.error)


class AsyncWaiter:
    """For an ``await``-ing caller on some event loop; resolved from any thread."""

    __slots__ = ("_future", "_loop", "_result", "_thread", "_token")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._token = [True]
        self._loop = loop
        self._thread = threading.get_ident()
        self._future: asyncio.Future[object] | None = None
        self._result: tuple[bool, object, BaseException | None] | None = None

    def resolve(self, ok: bool, value: object, error: BaseException | None) -> bool:
        try:
            self._token.pop()
        except IndexError:
            return False
        if threading.get_ident() == self._thread:
            self._set((ok, value, error))
        else:
            # a closed loop means the asker is gone: nobody is left to answer
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._set, (ok, value, error))
        return True

    def answered(self) -> tuple[bool, object, BaseException | None] | None:
        """``(ok, value, error)`` if the answer is already here (read on the caller's thread)."""
        return self._result

    def _set(self, result: tuple[bool, object, BaseException | None]) -> None:
        self._result = result
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float | None, what: str) -> object:
        """Wait on the caller's loop; runs only on that loop's thread, so no lock is needed."""
        if self._result is None:
            self._future = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._future), timeout)
            except TimeoutError:
                late = InvocationTimeoutError(f"{what}: no answer within {timeout} s")
                if not self.resolve(False, NOOP, late):
                    await self._future  # the reply won the race; it is one loop turn away
        ok, value, error = cast(tuple[bool, object, BaseException | None], self._result)
        if ok:
            return value
        raise cast(BaseException, error)
