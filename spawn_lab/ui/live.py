"""The heartbeat of live views: record trace events while a view is open, hand them over ≤ 4 Hz.

Observability must cost almost nothing when nobody looks and little when somebody does. So a
:class:`LiveLoop` subscribes to the trace bus only between :meth:`~LiveLoop.start` and
:meth:`~LiveLoop.stop`, and its subscriber is a bound ``deque.append``: a C call per event,
no Python frame, never a lock. A daemon thread wakes every ``interval`` seconds, drains the
queue and passes the batch to its listeners (graph, sequence diagram, event log), which fold
it in and redraw. The thread keeps widget work off the kernel's loop, so a cell that floods
the mesh with 10k messages per second neither waits for drawing nor stalls it.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable

from spawn_lab.core.trace import RawEvent, TraceBus

__all__ = ("ErrorSink", "Listener", "LiveLoop", "after_seq")

Listener = Callable[[list[RawEvent]], None]
ErrorSink = Callable[[str, BaseException], None]

#: Events kept between two ticks; beyond this the oldest are dropped and views report them lost.
QUEUE_LIMIT = 500_000


def _print_error(where: str, exc: BaseException) -> None:
    print(f"spawn_lab live view: {where} failed:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)


class LiveLoop:
    """Feeds listeners with new trace events at most ``1 / interval`` times per second.

    ``tick()`` does one round synchronously (tests and the "refresh" buttons use it); the
    thread started by ``start()`` calls it on a timer. Listener errors go to ``on_error`` (the
    lab's error pane) and never kill the thread.
    """

    def __init__(
        self,
        bus: TraceBus,
        *,
        interval: float = 0.25,
        on_error: ErrorSink | None = None,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        if interval < 0.25:
            raise ValueError(f"interval must be at least 0.25 s (4 Hz), got {interval!r}")
        self.bus = bus
        self.interval = interval
        self.on_error: ErrorSink = on_error or _print_error
        self.listeners: list[Listener] = []
        self.seq = 0
        self.ticks = 0
        self._queue: deque[RawEvent] = deque(maxlen=queue_limit)
        self._unsubscribe: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: held while listeners run; hold it to read what they build (re-entrant)
        self.lock = threading.RLock()
        self._catch_up = True

    @property
    def subscribed(self) -> bool:
        return self._unsubscribe is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def add(self, listener: Listener) -> None:
        """Call ``listener(batch)`` with each batch of new raw events (oldest first)."""
        self.listeners.append(listener)

    def subscribe(self) -> None:
        """Start recording events (idempotent); the next tick also catches up from the ring."""
        if self._unsubscribe is None:
            self._unsubscribe = self.bus.subscribe(self._queue.append)
            self._catch_up = True

    def start(self) -> None:
        """Subscribe and start the timer thread (idempotent)."""
        self.subscribe()
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="spawn-lab-live", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Unsubscribe and stop the thread: from now on the views cost nothing."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        self._queue.clear()

    def tick(self) -> int:
        """Drain what arrived (or catch up from the ring), feed the listeners; returns the count."""
        with self.lock:
            batch = self._drain()
            self.ticks += 1
            for listener in self.listeners:
                try:
                    listener(batch)
                except Exception as exc:  # a broken view must not stop the others
                    self.on_error(f"live view {getattr(listener, '__qualname__', listener)}", exc)
            return len(batch)

    def _drain(self) -> list[RawEvent]:
        queue = self._queue
        popleft = queue.popleft
        batch = [popleft() for _ in range(len(queue))]
        if self._catch_up or self._unsubscribe is None or (batch and batch[0][0] > self.seq + 1):
            # events from before the subscription, dropped by a full queue, or a tick while
            # not subscribed at all: take what the ring still holds
            self._catch_up = False
            older = after_seq(self.bus.raw(), self.seq)
            if batch:
                older = older[: _first_at_or_after(older, batch[0][0])]
            batch = older + batch
        elif batch and batch[0][0] <= self.seq:
            batch = [e for e in batch if e[0] > self.seq]
        if batch:
            self.seq = batch[-1][0]
        return batch

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # never let the thread die quietly
                self.on_error("live loop", exc)

    def __repr__(self) -> str:
        state = "running" if self.running else ("subscribed" if self.subscribed else "stopped")
        return f"<LiveLoop {state}, {len(self.listeners)} views, seq {self.seq}>"


def after_seq(raw: list[RawEvent], seq: int) -> list[RawEvent]:
    """The events of ``raw`` (ordered by seq) with a seq above ``seq``, found by bisection."""
    return raw[_first_at_or_after(raw, seq + 1) :]


def _first_at_or_after(raw: list[RawEvent], seq: int) -> int:
    lo, hi = 0, len(raw)
    while lo < hi:
        mid = (lo + hi) // 2
        if raw[mid][0] < seq:
            lo = mid + 1
        else:
            hi = mid
    return lo
