"""Who talks to whom: trace events folded, incrementally, into a networkx model of the mesh.

Nodes are actors, plus pseudo-nodes for the outside world (:data:`EXTERNAL`), broadcast
channels (``#topic``) and messages that found no actor (:data:`DEAD_LETTERS`). Pseudo-node ids
start with punctuation, which :func:`~spawn_lab.core.model.validate_name` refuses for actors,
so they can never collide with a real actor's name.

Edges live in a ``MultiDiGraph`` keyed by :class:`MessageKind`, so ``(src, dst, kind)`` is one
edge with a ``count``, the ``last`` time and ``last_seq`` it carried a message, and a ``failed``
flag. The model only reads raw event tuples; it knows nothing of widgets or drawing, so tests
and exports use it without a display. :meth:`FlowModel.feed` is the hot path of every live view:
it runs for each event while a view is open, so it keeps to tuple unpacking and dict lookups.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable
from enum import Enum, StrEnum
from typing import Any

import networkx as nx

from spawn_lab.core.effects import Via
from spawn_lab.core.trace import EventKind, RawEvent, TraceBus
from spawn_lab.ui.live import after_seq

__all__ = (
    "DEAD_LETTERS",
    "EXTERNAL",
    "FlowModel",
    "MessageKind",
    "NodeRole",
    "channel_node",
)

#: Where invocations from outside the mesh (a cell, an HTTP client) come from.
EXTERNAL = ":external"
#: Where messages to actors that do not exist end up (``DROP`` events).
DEAD_LETTERS = ":dead-letters"

_OPEN_LIMIT = 200_000  # open invocations remembered for reply routing; oldest dropped beyond


class MessageKind(StrEnum):
    """How a message travelled; each kind is drawn in its own style.

    A ``StrEnum`` because it is part of every edge key, and a plain ``Enum`` hashes in Python.
    """

    INVOKE = "invoke"
    REPLY = "reply"
    PIPE = "pipe"
    FORWARD = "forward"
    BROADCAST = "broadcast"
    SIDE_EFFECT = "side_effect"
    TIMER = "timer"


class NodeRole(Enum):
    """What a node stands for."""

    ACTOR = "actor"
    CHANNEL = "channel"
    EXTERNAL = "external"
    DEAD_LETTERS = "dead_letters"


_VIA_KIND = {
    Via.EXTERNAL: MessageKind.INVOKE,
    Via.PROJECTION: MessageKind.INVOKE,
    Via.SCHEDULED: MessageKind.TIMER,
    Via.TIMER: MessageKind.TIMER,
    Via.BROADCAST: MessageKind.BROADCAST,
    Via.EFFECT: MessageKind.SIDE_EFFECT,
    Via.PIPE: MessageKind.PIPE,
    Via.FORWARD: MessageKind.FORWARD,
}


_INVOKE, _STATE, _REPLY = EventKind.INVOKE, EventKind.STATE, EventKind.REPLY
_EXTERNAL_VIA, _INIT_VIA, _BROADCAST_VIA, _TIMER_VIA = (
    Via.EXTERNAL,
    Via.INIT,
    Via.BROADCAST,
    Via.TIMER,
)
_K_INVOKE, _K_REPLY, _K_PIPE = MessageKind.INVOKE, MessageKind.REPLY, MessageKind.PIPE
_K_FORWARD, _K_BROADCAST, _K_TIMER = MessageKind.FORWARD, MessageKind.BROADCAST, MessageKind.TIMER
_NO_ENTRY: tuple[None, None] = (None, None)


def channel_node(topic: str) -> str:
    """The node id of a broadcast topic."""
    return "#" + topic


def label_of(node: str) -> str:
    """What to print next to a node."""
    if node == EXTERNAL:
        return "external"
    if node == DEAD_LETTERS:
        return "dead letters"
    return node


class FlowModel:
    """A mesh graph that grows as events arrive. Not thread-safe: feed it from one thread.

    ``node_version`` changes when a node appears (time to place it); ``edge_version`` when an
    edge appears (time to rebuild edge geometry). Everything else changes attributes in place.
    """

    def __init__(self) -> None:
        self.graph: nx.MultiDiGraph = nx.MultiDiGraph()
        self.seq = 0
        self.lost = 0
        self.messages = 0
        self.failures = 0
        self.last_time = 0.0
        self.node_version = 0
        self.edge_version = 0
        self._nodes: dict[str, dict[str, Any]] = {}
        self._edges: dict[tuple[str, str, MessageKind], dict[str, Any]] = {}
        # invocation id -> (who gets the reply or None, the edge it travelled)
        self._open: dict[int, tuple[str | None, tuple[str, str, MessageKind] | None]] = {}
        self._routed: dict[int, str | None] = {}
        self._topics: dict[int, str] = {}
        self._handlers = {
            EventKind.FAIL: self._fail,
            EventKind.BROADCAST: self._broadcast,
            EventKind.ACTIVATE: self._activate,
            EventKind.DEACTIVATE: self._deactivate,
            EventKind.REGISTER: self._register,
            EventKind.SPAWN: self._spawn,
            EventKind.SAVE: self._save,
            EventKind.DELIVER: self._deliver,
            EventKind.DROP: self._drop,
            EventKind.BREAKPOINT: self._breakpoint,
        }
        self._node(EXTERNAL, NodeRole.EXTERNAL)

    # -- feeding ----------------------------------------------------------------------------------

    def feed(self, events: Iterable[RawEvent]) -> int:
        """Fold raw events in, skipping ones already seen; returns how many were new.

        This is what an open view pays per event, so the events every message makes (invoke,
        reply, state) are handled inline with locals: a method call per event would cost a
        view more than the ask it watches. An actor's ``messages`` counts the invocations
        addressed to it.
        """
        handlers = self._handlers
        nodes, edges, opened, routed = self._nodes, self._edges, self._open, self._routed
        topics = self._topics
        seen = self.seq
        new = messages = lost = 0
        time = self.last_time
        for event in events:
            seq, time, kind, inv, cause, actor, _, detail = event
            if seq <= seen:
                continue
            if seq != seen + 1 and seen:
                lost += seq - seen - 1
            seen = seq
            new += 1
            if kind is _INVOKE:
                via = detail[0]
                if via is _EXTERNAL_VIA:
                    src = detail[1] or EXTERNAL
                    mkind = _K_INVOKE
                elif via is _INIT_VIA:
                    opened[inv] = _NO_ENTRY
                    continue
                elif via is _BROADCAST_VIA:
                    src = topics.get(cause) or detail[1] or EXTERNAL
                    mkind = _K_BROADCAST
                elif via is _TIMER_VIA:
                    src = actor
                    mkind = _K_TIMER
                else:
                    src = detail[1] or EXTERNAL
                    mkind = _VIA_KIND.get(via, _K_INVOKE)
                key = (src, actor, mkind)
                edge = edges.get(key)
                if edge is None:
                    edge = self._new_edge(key)
                edge["count"] += 1
                edge["last"] = time
                edge["last_seq"] = seq
                messages += 1
                nodes[actor]["messages"] += 1  # the edge made sure the node exists
                if mkind is _K_PIPE or mkind is _K_FORWARD:
                    reply_to = routed.pop(cause, src)
                    opened[inv] = (None if detail[2] else reply_to, key)
                else:
                    opened[inv] = (None if detail[2] else src, key)
            elif kind is _REPLY:
                entry = opened.pop(inv, None)
                if topics:
                    topics.pop(inv, None)
                if entry is None:
                    continue
                reply_to, sent = entry
                if detail == "routed":  # pipe or forward: the last hop answers the caller
                    routed[inv] = reply_to
                elif reply_to is not None and sent is not None:
                    rkey = (sent[1], reply_to, _K_REPLY)
                    edge = edges.get(rkey)
                    if edge is None:
                        edge = self._new_edge(rkey)
                    edge["count"] += 1
                    edge["last"] = time
                    edge["last_seq"] = seq
                    messages += 1
            elif kind is _STATE:
                continue
            else:
                handler = handlers.get(kind)
                if handler is not None:
                    handler(event)
        if new:
            self.seq = seen
            self.last_time = time
            self.messages += messages
            self.lost += lost
            _trim(opened)
            _trim(routed)
        return new

    def sync(self, bus: TraceBus) -> int:
        """Catch up with everything the bus still holds that this model has not seen."""
        return self.feed(after_seq(bus.raw(), self.seq))

    def describe(self, infos: Iterable[Any]) -> None:
        """Fill in kinds and activity from ``ActorSystem.actors()`` (for a model that starts late).

        Takes anything shaped like :class:`~spawn_lab.core.engine.ActorInfo`.
        """
        for info in infos:
            node = self._node(info.actor_id.name, NodeRole.ACTOR)
            node["kind"] = info.kind.name
            node["template"] = bool(info.template)
            node["parent"] = info.actor_id.parent
            node["active"] = bool(info.active)
            if info.revision:
                node["revision"] = info.revision

    # -- queries ------------------------------------------------------------------------------

    def edges(self) -> dict[tuple[str, str, MessageKind], dict[str, Any]]:
        """Every edge's attribute dict, by ``(src, dst, kind)``; do not mutate."""
        return self._edges

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Every node's attribute dict, by id; do not mutate."""
        return self._nodes

    def failed_edges(self) -> list[tuple[str, str, MessageKind]]:
        return [key for key, data in self._edges.items() if data["failed"]]

    def summary(self) -> dict[str, int]:
        """Counts for a status line or a report."""
        actors = [n for n in self._nodes.values() if n["role"] is NodeRole.ACTOR]
        return {
            "actors": len(actors),
            "active": sum(1 for n in actors if n["active"]),
            "channels": sum(1 for n in self._nodes.values() if n["role"] is NodeRole.CHANNEL),
            "edges": len(self._edges),
            "messages": self.messages,
            "failures": self.failures,
            "events": self.seq,
            "lost": self.lost,
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in self.summary().items()
        )
        return f"<div><b>FlowModel</b><table>{rows}</table></div>"

    def __repr__(self) -> str:
        s = self.summary()
        return f"<FlowModel {s['actors']} actors, {s['edges']} edges, {s['messages']} messages>"

    # -- building blocks ------------------------------------------------------------------------

    def _node(self, name: str, role: NodeRole) -> dict[str, Any]:
        node = self._nodes.get(name)
        if node is None:
            self.graph.add_node(
                name,
                role=role,
                kind="",
                template=False,
                parent="",
                active=False,
                keys=set(),
                messages=0,
                failures=0,
                revision=0,
                last=0.0,
                last_seq=0,
                error="",
                breakpoint=0,
            )
            node = self.graph.nodes[name]
            self._nodes[name] = node
            self.node_version += 1
        return node

    def _new_edge(self, key: tuple[str, str, MessageKind]) -> dict[str, Any]:
        src, dst, kind = key
        if src not in self._nodes:
            self._node(src, NodeRole.ACTOR)
        if dst not in self._nodes:
            self._node(dst, NodeRole.ACTOR)
        self.graph.add_edge(src, dst, key=kind, count=0, last=0.0, last_seq=0, failed=False)
        edge: dict[str, Any] = self.graph.edges[src, dst, kind]
        edge["failures"] = 0
        self._edges[key] = edge
        self.edge_version += 1
        return edge

    def _edge(self, src: str, dst: str, kind: MessageKind, time: float, seq: int) -> dict[str, Any]:
        key = (src, dst, kind)
        edge = self._edges.get(key)
        if edge is None:
            edge = self._new_edge(key)
        edge["count"] += 1
        edge["last"] = time
        edge["last_seq"] = seq
        self.messages += 1
        return edge

    # -- handlers, one per event kind -------------------------------------------------------------

    def _fail(self, event: RawEvent) -> None:
        seq, time, _, inv, _, actor, _, detail = event
        self.failures += 1
        text = detail.get("error", "") if isinstance(detail, dict) else str(detail or "")
        entry = self._open.pop(inv, None) if inv else None
        if entry is not None and entry[1] is not None:
            edge = self._edges[entry[1]]
            edge["failed"] = True
            edge["failures"] += 1
            edge["last"] = time
            edge["last_seq"] = seq
        node = self._nodes.get(actor)
        if node is None and "#" in actor:  # a pool replica's entity key, "name#0"
            node = self._nodes.get(actor.rsplit("#", 1)[0])
        if node is not None:
            node["failures"] += 1
            node["error"] = text
            node["last_seq"] = seq

    def _drop(self, event: RawEvent) -> None:
        seq, time, _, _, cause, _, _, _ = event
        entry = self._open.get(cause)
        src = entry[1][1] if entry is not None and entry[1] is not None else EXTERNAL
        self._node(DEAD_LETTERS, NodeRole.DEAD_LETTERS)
        edge = self._edge(src, DEAD_LETTERS, MessageKind.SIDE_EFFECT, time, seq)
        edge["failed"] = True
        edge["failures"] += 1
        self.failures += 1

    def _broadcast(self, event: RawEvent) -> None:
        seq, time, _, inv, _, actor, topic, _ = event
        node = channel_node(topic)
        if node not in self._nodes:
            self._node(node, NodeRole.CHANNEL)
        self._edge(actor, node, MessageKind.BROADCAST, time, seq)
        self._topics[inv] = node

    def _activate(self, event: RawEvent) -> None:
        node = self._node(event[5], NodeRole.ACTOR)
        node["keys"].add(event[7])
        node["active"] = True

    def _deactivate(self, event: RawEvent) -> None:
        node = self._node(event[5], NodeRole.ACTOR)
        node["keys"].discard(event[7])
        node["active"] = bool(node["keys"])

    def _register(self, event: RawEvent) -> None:
        node = self._node(event[5], NodeRole.ACTOR)
        detail = event[7]
        kind = detail.get("kind", "") if isinstance(detail, dict) else ""
        node["kind"] = kind
        node["template"] = kind == "UNNAMED"

    def _spawn(self, event: RawEvent) -> None:
        node = self._node(event[5], NodeRole.ACTOR)
        node["kind"] = "UNNAMED"
        detail = event[7]
        node["parent"] = detail.get("parent", "") if isinstance(detail, dict) else ""

    def _save(self, event: RawEvent) -> None:
        node = self._nodes.get(event[5])
        detail = event[7]
        if node is not None and isinstance(detail, tuple) and detail:
            node["revision"] = detail[0]

    def _deliver(self, event: RawEvent) -> None:
        """Traced only for a message that waited in a mailbox: when it finally started."""
        node = self._nodes.get(event[5])
        if node is not None:
            node["last"] = event[1]
            node["last_seq"] = event[0]

    def _breakpoint(self, event: RawEvent) -> None:
        node = self._nodes.get(event[5])
        if node is not None:
            node["breakpoint"] = event[0]


def _trim(memory: dict[int, Any]) -> None:
    """Forget the oldest invocations of a map that grew past its bound (answers never came)."""
    excess = len(memory) - _OPEN_LIMIT
    if excess > 0:
        for key in list(itertools.islice(memory, excess)):
            del memory[key]
