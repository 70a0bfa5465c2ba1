"""The lab's filterable event log and its export buttons.

The log keeps the last few thousand raw events it was fed (from the lab's LiveLoop, so it too
costs nothing while the lab is closed) and renders the newest matching rows as one HTML table;
one ``HTML.value`` per tick is far cheaper than a widget per row.
"""

from __future__ import annotations

import html
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from spawn_lab.core.trace import EventKind, RawEvent, TraceEvent
from spawn_lab.ui import exports
from spawn_lab.ui.replay import event_record
from spawn_lab.ui.support import ErrorPane

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("EventLog", "ExportPanel")

_ALL = "all kinds"
_CELL = "style='border-bottom:1px solid #eee;padding:0 6px;text-align:left;white-space:nowrap'"


class EventLog:
    """The newest trace events, filtered by kind and by a text that must appear in the row."""

    def __init__(self, errors: ErrorPane, *, keep: int = 5_000, rows: int = 150) -> None:
        import ipywidgets as w

        self.events: deque[RawEvent] = deque(maxlen=keep)
        self.rows = rows
        self.filter = w.Text(
            placeholder="filter: actor, action or detail text", layout=w.Layout(width="320px")
        )
        self.kind = w.Dropdown(
            options=[_ALL, *(k.value for k in EventKind)],
            value=_ALL,
            layout=w.Layout(width="140px"),
        )
        self.table = w.HTML(layout=w.Layout(max_height="260px", overflow="auto"))
        self.table.add_class("spawn-lab-log")
        redraw = errors.guard("event log filter")(lambda _: self.render())
        self.filter.observe(redraw, names="value")
        self.kind.observe(redraw, names="value")
        self.widget = w.VBox(
            [w.HBox([w.HTML("<b>Event log</b>"), self.kind, self.filter]), self.table]
        )
        self.render()

    def update(self, batch: list[RawEvent]) -> None:
        """A LiveLoop listener."""
        if batch:
            self.events.extend(batch)
            self.render()

    def recent(self, actor: str) -> list[RawEvent]:
        """Events that concern ``actor`` (as target, or as the caller of an invocation)."""
        return [
            e
            for e in list(self.events)  # a C-level copy: the live loop may be appending
            if e[5] == actor
            or (e[2] is EventKind.INVOKE and type(e[7]) is tuple and e[7][1] == actor)
        ]

    def matching(self) -> list[RawEvent]:
        kind = self.kind.value
        text = self.filter.value.strip().lower()
        picked: list[RawEvent] = []
        for e in reversed(list(self.events)):  # a copy: the live loop may be appending
            if kind != _ALL and e[2].value != kind:
                continue
            if text and text not in f"{e[5]} {e[6]} {e[7]}".lower():
                continue
            picked.append(e)
            if len(picked) >= self.rows:
                break
        return picked

    def render(self) -> None:
        rows = []
        for e in self.matching():
            detail = event_record(e)["detail"]
            text = json.dumps(detail, default=str)
            color = "#b00000" if e[2] in (EventKind.FAIL, EventKind.DROP) else "#222"
            rows.append(
                f"<tr style='color:{color}'><td {_CELL}>{e[0]}</td><td {_CELL}>{e[2].value}</td>"
                f"<td {_CELL}>#{e[3]}</td><td {_CELL}>{'#' + str(e[4]) if e[4] else ''}</td>"
                f"<td {_CELL}>{html.escape(e[5])}</td><td {_CELL}>{html.escape(e[6])}</td>"
                f"<td {_CELL} title='{html.escape(text[:2000])}'>{html.escape(text[:90])}</td></tr>"
            )
        head = "".join(
            f"<th {_CELL}>{h}</th>"
            for h in ("seq", "kind", "inv", "cause", "actor", "action", "detail")
        )
        self.table.value = (
            "<table style='border-collapse:collapse;font-family:monospace;font-size:11px'>"
            f"<tr>{head}</tr>{''.join(rows)}</table>"
            + ("" if rows else "<i style='font-size:12px'>no events yet</i>")
        )


class ExportPanel:
    """Buttons that write the run's artifacts into a folder and say where they went."""

    def __init__(
        self,
        system: ActorSystem,
        errors: ErrorPane,
        *,
        folder: str | Path | None = None,
        snapshot: Callable[[], bytes] | None = None,
        payloads: Callable[[], dict[int, tuple[object, dict[str, str]]]] | None = None,
    ) -> None:
        import ipywidgets as w

        self.system = system
        self.snapshot = snapshot
        self.payloads = payloads or dict
        self.folder = w.Text(
            value=str(folder or Path.cwd() / "spawn_lab_exports"),
            description="folder",
            layout=w.Layout(width="98%"),
        )
        buttons = {
            "Chrome trace": self.chrome,
            "Mermaid": self.mermaid,
            "HTML report": self.report,
            "JSONL log": self.jsonl,
        }
        row = []
        for label, action in buttons.items():
            button = w.Button(description=label, layout=w.Layout(width="auto"))
            button.on_click(errors.guard(f"export {label}")(lambda _, act=action: act()))
            row.append(button)
        self.result = w.HTML()
        self.text = w.Textarea(rows=8, layout=w.Layout(width="98%", display="none"))
        self.written: list[Path] = []
        self.widget = w.VBox(
            [w.HTML("<b>Exports</b>"), self.folder, w.HBox(row), self.result, self.text]
        )

    def _path(self, name: str) -> Path:
        folder = Path(self.folder.value).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.system.name}-{name}"
        self.written.append(path)
        self.result.value = (
            f"<span style='font-size:12px'>wrote <code>{html.escape(str(path))}</code></span>"
        )
        return path

    def _events(self) -> list[TraceEvent]:
        return self.system.events()

    def chrome(self) -> Path:
        path = self._path("trace.json")
        path.write_text(json.dumps(exports.chrome_trace(self._events(), system=self.system.name)))
        self._announce(path, "open it at https://ui.perfetto.dev")
        return path

    def mermaid(self) -> Path:
        text = exports.mermaid(self._events())
        path = self._path("sequence.mmd")
        path.write_text(text)
        self.text.value = text
        self.text.layout.display = None
        self._announce(path, "paste into a ```mermaid block")
        return path

    def report(self) -> Path:
        png = self.snapshot() if self.snapshot is not None else None
        path = self._path("report.html")
        path.write_text(exports.html_report(self.system, png=png, events=self._events()))
        self._announce(path, "a single self-contained file")
        return path

    def jsonl(self) -> Path:
        path = self._path("events.jsonl")
        count = exports.write_jsonl(
            self._events(), path, system=self.system.name, payloads=self.payloads()
        )
        self._announce(
            path, f"{count} events; replay with spawn_lab.ui.exports.replay(system, path)"
        )
        return path

    def _announce(self, path: Path, hint: str) -> None:
        self.result.value = (
            f"<span style='font-size:12px'>wrote <code>{html.escape(str(path))}</code> "
            f"({html.escape(hint)})</span>"
        )
