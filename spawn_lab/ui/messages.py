"""Trace events as a list of messages (who sent what to whom, and the answers), for diagrams.

The graph model folds events into counts; the sequence diagram and the Mermaid export need the
individual messages instead, in order, with the invocation that caused each. Both follow the
same routing rules as :class:`~spawn_lab.ui.flow.FlowModel`: the caller of an invocation is in
its ``INVOKE`` detail (empty means outside the mesh), a broadcast hop comes from its channel,
and the reply to a pipe or forward goes back to whoever asked first. No third-party imports:
exports work without the lab extras.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spawn_lab.core.effects import Via
from spawn_lab.core.trace import EventKind, RawEvent, TraceEvent

__all__ = ("DEAD", "OUTSIDE", "Message", "messages")

#: The participant that stands for callers outside the mesh.
OUTSIDE = "external"
#: The participant that receives messages for actors that do not exist.
DEAD = "dead letters"

_VIA_NAMES = {
    Via.EXTERNAL: "invoke",
    Via.PROJECTION: "invoke",
    Via.SCHEDULED: "timer",
    Via.TIMER: "timer",
    Via.BROADCAST: "broadcast",
    Via.EFFECT: "side_effect",
    Via.PIPE: "pipe",
    Via.FORWARD: "forward",
    Via.INIT: "init",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One arrow: ``kind`` is a :class:`~spawn_lab.ui.flow.MessageKind` value or ``init``."""

    seq: int
    time: float
    src: str
    dst: str
    kind: str
    action: str
    invocation: int
    cause: int
    asynchronous: bool = False
    failed: bool = False
    error: str = ""

    @property
    def is_reply(self) -> bool:
        return self.kind == "reply"


def messages(events: Iterable[RawEvent | TraceEvent]) -> list[Message]:
    """Every message the events describe, in trace order (replies and failures included)."""
    out: list[Message] = []
    opened: dict[int, tuple[str, str | None, str, bool]] = {}  # inv -> (dst, reply_to, kind, async)
    routed: dict[int, str | None] = {}
    topics: dict[int, str] = {}
    for event in events:
        raw = _raw(event)
        seq, time, kind, inv, cause, actor, action, detail = raw
        if kind is EventKind.INVOKE:
            via, caller, asynchronous = detail[0], detail[1], bool(detail[2])
            name = _VIA_NAMES.get(via, "invoke")
            if via is Via.BROADCAST:
                src = topics.get(cause) or caller or OUTSIDE
            elif via is Via.TIMER or via is Via.INIT:
                src = actor
            else:
                src = caller or OUTSIDE
            reply_to: str | None = None if asynchronous else src
            if via is Via.PIPE or via is Via.FORWARD:
                origin = routed.pop(cause, src)
                reply_to = None if asynchronous else origin
            opened[inv] = (actor, reply_to, name, asynchronous)
            out.append(Message(seq, time, src, actor, name, action, inv, cause, asynchronous))
        elif kind is EventKind.REPLY:
            entry = opened.pop(inv, None)
            if entry is None:
                continue
            if detail == "routed":
                routed[inv] = entry[1]
            elif entry[1] is not None:
                out.append(Message(seq, time, entry[0], entry[1], "reply", action, inv, cause))
        elif kind is EventKind.FAIL and inv:
            entry = opened.pop(inv, None)
            error = detail.get("error", "") if isinstance(detail, dict) else str(detail or "")
            target = (entry[1] if entry else None) or (entry[0] if entry else actor)
            out.append(
                Message(
                    seq, time, actor, target, "reply", action, inv, cause, failed=True, error=error
                )
            )
        elif kind is EventKind.BROADCAST:
            channel = "#" + action
            topics[inv] = channel
            out.append(Message(seq, time, actor, channel, "broadcast", action, inv, cause, True))
        elif kind is EventKind.DROP:
            entry = opened.get(cause)
            src = entry[0] if entry else OUTSIDE
            error = str(detail or "")
            out.append(
                Message(
                    seq,
                    time,
                    src,
                    DEAD,
                    "side_effect",
                    f"{actor}.{action}",
                    inv,
                    cause,
                    True,
                    failed=True,
                    error=error,
                )
            )
    return out


def _raw(event: RawEvent | TraceEvent) -> RawEvent:
    if isinstance(event, TraceEvent):
        return (
            event.seq,
            event.time,
            event.kind,
            event.invocation,
            event.cause,
            event.actor,
            event.action,
            event.detail,
        )
    return event
