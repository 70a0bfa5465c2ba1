"""HTML reprs, so an executed notebook still reads well on GitHub without a live kernel."""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spawn_lab.core.trace import TraceEvent
    from spawn_lab.runtime.refs import ActorRef
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("EventList", "ref_html", "show_value", "system_html")

_TABLE = 'style="border-collapse:collapse;font-family:monospace;font-size:12px"'
_CELL = 'style="border:1px solid #ccc;padding:2px 6px;text-align:left"'


def show_value(value: object, limit: int = 400) -> str:
    """A short, escaped rendering of a state or payload: JSON where possible."""
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text)


def _row(cells: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag} {_CELL}>{c}</{tag}>" for c in cells) + "</tr>"


def system_html(system: ActorSystem) -> str:
    infos = system.actors()
    counts = Counter(i.kind.name for i in infos)
    active = sum(1 for i in infos if i.active)
    summary = ", ".join(f"{n} {k.lower()}" for k, n in sorted(counts.items())) or "no actors"
    rows = [_row(["actor", "kind", "status", "revision", "mailbox"], header=True)]
    for info in sorted(infos, key=lambda i: i.actor_id.name)[:50]:
        status = "active" if info.active else ("template" if info.template else "passive")
        if info.active and info.template:
            status = "active (template invoked by name)"
        name = info.actor_id.name + (f" ← {info.actor_id.parent}" if info.actor_id.parent else "")
        rows.append(
            _row([html.escape(name), info.kind.name, status, str(info.revision), str(info.mailbox)])
        )
    more = f"<p>… and {len(infos) - 50} more</p>" if len(infos) > 50 else ""
    mode = "paused" if system.paused else "running"
    return (
        f"<div><b>ActorSystem {html.escape(system.name)}</b> ({mode}, store "
        f"<code>{html.escape(system.store.url)}</code>): {summary}; {active} active, "
        f"{len(system.trace)} trace events"
        f"<table {_TABLE}>{''.join(rows)}</table>{more}</div>"
    )


def ref_html(ref: ActorRef) -> str:
    system = ref.system
    try:
        state, tags, revision = system.inspect(ref.name)
        defn = system.definition(ref.name)
    except Exception as exc:  # a repr must never raise in a notebook
        return f"<div>ActorRef {html.escape(ref.name)}: <i>{html.escape(str(exc))}</i></div>"
    rows = [
        _row(["kind", defn.settings.kind.name]),
        _row(["actions", html.escape(", ".join(defn.all_actions()) or "(none)")]),
        _row(["state", show_value(state)]),
        _row(["tags", show_value(tags)]),
        _row(["revision", str(revision)]),
        _row(["mailbox", str(len(system.mailbox(ref.name)))]),
    ]
    return (
        f"<div><b>ActorRef {html.escape(system.name)}/{html.escape(ref.name)}</b>"
        f"<table {_TABLE}>{''.join(rows)}</table></div>"
    )


class EventList(list["TraceEvent"]):
    """Trace events that show as a table in a notebook (the newest 200); slices stay tables."""

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return EventList(item) if isinstance(index, slice) else item

    def _repr_html_(self) -> str:
        rows = [_row(["seq", "t", "event"], header=True)]
        for event in self[-200:]:
            rows.append(_row([str(event.seq), f"{event.time:.3f}", html.escape(event.describe())]))
        more = f"<p>… {len(self) - 200} earlier events not shown</p>" if len(self) > 200 else ""
        table = f"<table {_TABLE}>{''.join(rows)}</table>"
        return f"<div><b>{len(self)} trace events</b>{more}{table}</div>"

    def __str__(self) -> str:
        return "\n".join(e.describe() for e in self)
