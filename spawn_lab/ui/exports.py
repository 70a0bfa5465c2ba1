"""Portable artifacts of a run: a Chrome/Perfetto trace, a Mermaid diagram, an HTML report.

The JSONL event log and its replay live in :mod:`spawn_lab.ui.replay` and are re-exported
here, so every export is one import away. :class:`Trace` wraps a system's trace for a
notebook: an HTML table as its repr, and each export as a method.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spawn_lab.core.trace import EventKind, RawEvent, TraceEvent
from spawn_lab.ui.messages import messages
from spawn_lab.ui.replay import (
    FORMAT,
    Payloads,
    ReplayResult,
    detail_record,
    event_record,
    read_jsonl,
    replay,
    write_jsonl,
)

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = (
    "FORMAT",
    "ReplayResult",
    "Trace",
    "chrome_trace",
    "event_record",
    "html_report",
    "mermaid",
    "read_jsonl",
    "replay",
    "write_jsonl",
)

# -- Chrome trace (Perfetto, chrome://tracing) ----------------------------------------------


def chrome_trace(
    events: Iterable[RawEvent | TraceEvent], *, system: str = "spawn"
) -> dict[str, Any]:
    """The trace in Chrome's Trace Event Format: open it at https://ui.perfetto.dev.

    One track per actor; a handler run is a slice from its start to its reply (or failure),
    every event is also an instant, and a flow arrow links each hop to the invocation that
    caused it.
    """
    items = [e if isinstance(e, TraceEvent) else TraceEvent.of(e) for e in events]
    start = items[0].time if items else 0.0
    tids: dict[str, int] = {}
    out: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": system}}
    ]

    def tid(actor: str) -> int:
        if actor not in tids:
            tids[actor] = len(tids) + 1
            out.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": 1,
                    "tid": tids[actor],
                    "args": {"name": actor},
                }
            )
        return tids[actor]

    def us(t: float) -> float:
        return round((t - start) * 1e6, 3)

    # a handler starts at its INVOKE, or at its DELIVER if it had to wait in the mailbox (the
    # engine traces DELIVER only then)
    running: dict[int, TraceEvent] = {}
    where: dict[int, str] = {}
    for e in items:
        if e.kind is EventKind.DELIVER:
            running[e.invocation] = e
            continue
        if e.kind in (EventKind.REPLY, EventKind.FAIL) and e.invocation in running:
            began = running.pop(e.invocation)
            out.append(
                {
                    "ph": "X",
                    "name": began.action,
                    "cat": e.kind.value,
                    "pid": 1,
                    "tid": tid(began.actor),
                    "ts": us(began.time),
                    "dur": max(us(e.time) - us(began.time), 0.001),
                    "args": {
                        "invocation": e.invocation,
                        "cause": e.cause,
                        "failed": e.kind is EventKind.FAIL,
                        **detail_record(e, None),
                    },
                }
            )
            continue
        if e.kind is EventKind.INVOKE:
            running[e.invocation] = e
            where[e.invocation] = e.actor
            if e.cause and e.cause in where:
                flow = {
                    "name": "caused",
                    "cat": "causality",
                    "id": e.invocation,
                    "pid": 1,
                    "bp": "e",
                }
                out.append({**flow, "ph": "s", "tid": tid(where[e.cause]), "ts": us(e.time)})
                out.append({**flow, "ph": "f", "tid": tid(e.actor), "ts": us(e.time)})
        out.append(
            {
                "ph": "i",
                "s": "t",
                "name": f"{e.kind.value} {e.action}".strip(),
                "cat": e.kind.value,
                "pid": 1,
                "tid": tid(e.actor),
                "ts": us(e.time),
                "args": {"invocation": e.invocation, "cause": e.cause, **detail_record(e, None)},
            }
        )
    return {"traceEvents": out, "displayTimeUnit": "ms", "otherData": {"system": system}}


# -- Mermaid --------------------------------------------------------------------------------------

_MERMAID_ARROWS = {"reply": "-->>", "side_effect": "-)", "broadcast": "-)", "timer": "-)"}


def mermaid(events: Iterable[RawEvent | TraceEvent], *, limit: int = 60) -> str:
    """A Mermaid ``sequenceDiagram`` of the last ``limit`` messages (paste into Markdown)."""
    msgs = messages(events)[-limit:]
    names: dict[str, str] = {}
    lines = ["sequenceDiagram"]
    for m in msgs:
        for name in (m.src, m.dst):
            if name not in names:
                names[name] = f"p{len(names)}"
                lines.append(f"    participant {names[name]} as {_mermaid_text(name)}")
    for m in msgs:
        if m.failed:
            arrow = "--x"
            text = (
                f"✗ #{m.invocation} {m.action}: {m.error.splitlines()[0] if m.error else 'failed'}"
            )
        else:
            arrow = _MERMAID_ARROWS.get(m.kind, "-)" if m.asynchronous else "->>")
            text = f"#{m.invocation} {m.action}" + (
                f" ({m.kind})" if m.kind not in ("invoke", "reply") else ""
            )
            if m.cause and not m.is_reply:
                text += f" ← #{m.cause}"
        lines.append(f"    {names[m.src]}{arrow}{names[m.dst]}: {_mermaid_text(text)}")
    return "\n".join(lines) + "\n"


_MERMAID_ENTITIES = {"#": "#35;", ";": "#59;", ":": "#58;", "\n": " ", "\r": " "}


def _mermaid_text(text: str) -> str:
    """Mermaid reads ``;`` ``:`` ``#`` in a message as syntax; write its entity codes instead."""
    return "".join(_MERMAID_ENTITIES.get(c, c) for c in text)


# -- HTML report ----------------------------------------------------------------------------


def html_report(
    system: ActorSystem,
    *,
    png: bytes | None = None,
    events: list[TraceEvent] | None = None,
    title: str = "",
) -> str:
    """A self-contained HTML page: the graph as an embedded PNG, a summary and recent events."""
    if events is None:
        events = system.events()
    if png is None:
        from spawn_lab.ui.flow import FlowModel
        from spawn_lab.ui.render import GraphRenderer

        model = FlowModel()
        model.describe(system.actors())
        model.sync(system.trace)
        png = GraphRenderer().render(model)
    infos = system.actors()
    kinds = Counter(i.kind.name for i in infos)
    counts = Counter(e.kind.value for e in events)
    failures = [e for e in events if e.kind in (EventKind.FAIL, EventKind.DROP)]
    image = base64.b64encode(png).decode("ascii")
    title = title or f"spawn_lab report: {system.name}"
    cell = "style='border:1px solid #ccc;padding:2px 8px;text-align:left'"

    def table(rows: Iterable[Iterable[object]], head: Iterable[str]) -> str:
        header = "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head)
        body = "".join(
            "<tr>" + "".join(f"<td {cell}>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        style = "border-collapse:collapse;font-size:12px"
        return f"<table style='{style}'><tr>{header}</tr>{body}</table>"

    actors = sorted(infos, key=lambda i: i.actor_id.name)
    actor_rows = [
        (
            i.actor_id.name,
            i.kind.name,
            "active" if i.active else ("template" if i.template else "passive"),
            i.revision,
            i.mailbox,
        )
        for i in actors[:200]
    ]
    recent = [(e.seq, e.kind.value, e.invocation, e.cause, e.actor, e.action) for e in events[-50:]]
    fails = [
        (e.seq, e.actor, e.action, str(detail_record(e, None).get("error", ""))[:300])
        for e in failures[-20:]
    ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;margin:20px'>"
        f"<h1 style='font-size:20px'>{html.escape(title)}</h1>"
        f"<p>{len(infos)} actors ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
        f"{len(events)} trace events, {len(failures)} failures.</p>"
        f"<img alt='mesh graph' src='data:image/png;base64,{image}' style='max-width:100%'>"
        "<h2 style='font-size:16px'>Actors</h2>"
        + table(actor_rows, ("actor", "kind", "status", "revision", "mailbox"))
        + "<h2 style='font-size:16px'>Events by kind</h2>"
        + table(sorted(counts.items()), ("kind", "count"))
        + "<h2 style='font-size:16px'>Failures</h2>"
        + (table(fails, ("seq", "actor", "action", "error")) if fails else "<p>none</p>")
        + "<h2 style='font-size:16px'>Recent events</h2>"
        + table(recent, ("seq", "kind", "invocation", "cause", "actor", "action"))
        + "</body></html>"
    )


# -- a notebook handle -------------------------------------------------------------------------


class Trace:
    """A snapshot of a system's trace with every export one call away, and an HTML table repr.

    ``Trace(system)`` takes the events in the ring now; ``last`` limits the table, not the
    exports.
    """

    def __init__(self, system: ActorSystem, *, since: int = 0, last: int = 50) -> None:
        self.system = system
        self.events = system.events(since)
        self.last = last

    def chrome(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        trace = chrome_trace(self.events, system=self.system.name)
        if path is not None:
            Path(path).write_text(json.dumps(trace), encoding="utf-8")
        return trace

    def mermaid(self, *, limit: int = 60) -> str:
        return mermaid(self.events, limit=limit)

    def jsonl(self, path: str | os.PathLike[str], *, payloads: Payloads | None = None) -> int:
        return write_jsonl(self.events, path, system=self.system.name, payloads=payloads)

    def report(self, path: str | os.PathLike[str] | None = None) -> str:
        page = html_report(self.system, events=self.events)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def sequence(self, *, limit: int = 40) -> Any:
        from spawn_lab.ui.sequence import SequenceDiagram

        return SequenceDiagram(self.events, limit=limit)

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"<Trace {self.system.name!r}: {len(self.events)} events>"

    def _repr_html_(self) -> str:
        cell = "style='border:1px solid #ddd;padding:1px 6px;text-align:left'"
        rows = "".join(
            f"<tr><td {cell}>{e.seq}</td><td {cell}>{e.kind.value}</td>"
            f"<td {cell}>{e.invocation}</td>"
            f"<td {cell}>{e.cause or ''}</td><td {cell}>{html.escape(e.actor)}</td>"
            f"<td {cell}>{html.escape(e.action)}</td>"
            f"<td {cell}>{html.escape(_short_detail(e))}</td></tr>"
            for e in self.events[-self.last :]
        )
        head = "".join(
            f"<th {cell}>{h}</th>"
            for h in ("seq", "kind", "inv", "cause", "actor", "action", "detail")
        )
        return (
            f"<div><b>Trace {html.escape(self.system.name)}</b>: {len(self.events)} events"
            f" (last {min(self.last, len(self.events))} shown)<table style='border-collapse:"
            f"collapse;font-family:monospace;font-size:11px'><tr>{head}</tr>{rows}</table></div>"
        )


def _short_detail(e: TraceEvent) -> str:
    return json.dumps(detail_record(e, None), default=str)[:120]
