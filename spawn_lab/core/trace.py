"""The trace bus: every hop of the mesh as a small event in a bounded ring buffer.

Events are stored as plain tuples because building one must cost next to nothing: the bus is
always on, and views (graph, sequence diagram, exports) turn tuples into :class:`TraceEvent`
objects only when they look. Subscribers are called synchronously with each raw tuple and must
only record it (a view marks itself dirty and redraws later, throttled).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ("EventKind", "RawEvent", "TraceBus", "TraceEvent")


class EventKind(Enum):
    """What happened. ``via`` in the event detail tells how a message was sent."""

    REGISTER = "register"
    SPAWN = "spawn"
    INVOKE = "invoke"
    DELIVER = "deliver"
    REPLY = "reply"
    FAIL = "fail"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    STATE = "state"
    SAVE = "save"
    TIMER = "timer"
    SCHEDULE = "schedule"
    BROADCAST = "broadcast"
    BREAKPOINT = "breakpoint"
    DROP = "drop"


#: (seq, time, kind, invocation id, cause id, actor, action, detail)
RawEvent = tuple[int, float, EventKind, int, int, str, str, Any]


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One event, readable. ``cause`` is the invocation that led to this one (0 for none).

    ``detail`` depends on the kind (read it through the properties below where one exists):

    ========== ===================================================================
    INVOKE     ``(via, caller name or "", asynchronous, payload, metadata)``: see :attr:`via`
    STATE      the new state
    FAIL       the error text, or ``{"error": text, "save": True}`` for a failed save
    SAVE       ``(revision, status)``
    SCHEDULE   the deadline (engine seconds) of a delayed invocation
    TIMER      the timer's interval in ms
    BROADCAST  how many subscribers the channel had; ``action`` is the channel
    ACTIVATE   the activation's key (``name``, or ``name#i`` for a pool replica)
    REGISTER   ``{"kind": KIND}``; SPAWN: ``{"parent": template}``
    REPLY      ``(reply value,)``, or ``"routed"`` when a pipe or forward carries the answer on
    ========== ===================================================================
    """

    seq: int
    time: float
    kind: EventKind
    invocation: int
    cause: int
    actor: str
    action: str
    detail: Any

    @classmethod
    def of(cls, raw: RawEvent) -> TraceEvent:
        return cls(*raw)

    @property
    def via(self) -> str:
        """How an INVOKE was sent: invoke, timer, broadcast, pipe, forward, side_effect, ..."""
        if self.kind is EventKind.INVOKE and isinstance(self.detail, tuple):
            return str(getattr(self.detail[0], "value", self.detail[0]))
        return ""

    @property
    def caller(self) -> str:
        """The calling actor of an INVOKE ("" for an external caller)."""
        if self.kind is EventKind.INVOKE and isinstance(self.detail, tuple):
            return str(self.detail[1])
        return ""

    @property
    def error(self) -> str:
        """The error text of a FAIL event."""
        if self.kind is not EventKind.FAIL:
            return ""
        if isinstance(self.detail, dict):
            return str(self.detail.get("error", ""))
        return str(self.detail)

    def describe(self) -> str:
        """One readable line, e.g. ``#12 invoke counter.add <- front (pipe), caused by #11``."""
        target = f"{self.actor}.{self.action}" if self.action else self.actor
        text = (
            f"#{self.invocation} {self.kind.value} {target}"
            if self.invocation
            else (f"{self.kind.value} {target}")
        )
        if self.kind is EventKind.INVOKE:
            text += f" <- {self.caller or 'external'} ({self.via})"
        elif self.kind is EventKind.FAIL:
            text += f": {self.error.splitlines()[0] if self.error else ''}"
        if self.cause:
            text += f", caused by #{self.cause}"
        return text


class TraceBus:
    """A bounded ring of raw events plus optional synchronous subscribers."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ring: deque[RawEvent] = deque(maxlen=capacity)
        #: the next sequence number (call ``next`` on it); shared by ``emit`` and ``record``
        self.seq = itertools.count(1)
        self._subscribers: list[Callable[[RawEvent], None]] = []
        self.capacity = capacity
        #: append one complete raw event: the ring's own C ``append`` while nobody subscribes,
        #: so the hottest events cost one tuple and one C call
        self.record: Callable[[RawEvent], None] = self._ring.append

    def emit(
        self,
        now: float,
        kind: EventKind,
        invocation: int,
        cause: int,
        actor: str,
        action: str,
        detail: Any = None,
    ) -> None:
        """Record one event; the hot path, so it only builds a tuple and appends it."""
        self.record((next(self.seq), now, kind, invocation, cause, actor, action, detail))

    def _record_and_notify(self, event: RawEvent) -> None:
        self._ring.append(event)
        for subscriber in self._subscribers:
            subscriber(event)

    def subscribe(self, subscriber: Callable[[RawEvent], None]) -> Callable[[], None]:
        """Call ``subscriber`` with every new raw event; returns a function that unsubscribes."""
        self._subscribers = [*self._subscribers, subscriber]
        self.record = self._record_and_notify

        def unsubscribe() -> None:
            self._subscribers = [s for s in self._subscribers if s is not subscriber]
            if not self._subscribers:
                self.record = self._ring.append

        return unsubscribe

    def raw(self) -> list[RawEvent]:
        """A copy of the ring, oldest first."""
        return list(self._ring)

    def events(self, since: int = 0) -> Iterator[TraceEvent]:
        """Readable events with ``seq > since``, oldest first."""
        for raw in list(self._ring):
            if raw[0] > since:
                yield TraceEvent.of(raw)

    def clear(self) -> None:
        self._ring.clear()

    def __len__(self) -> int:
        return len(self._ring)
