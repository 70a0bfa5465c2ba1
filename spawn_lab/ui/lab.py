"""``lab(system)``: the whole lab in one ipywidgets ``AppLayout``, or text without ipywidgets.

Layout (peers.md §4.1): stepping across the top; actors and the spawn form on the left; the
live graph, the sequence diagram, the event log and exports as tabs in the centre; the message
composer and the inspector on the right; the error pane along the bottom, always visible.

One :class:`LiveLoop` feeds every live panel. It starts when a front end shows the layout and
stops when the last view closes, so a lab left in a closed notebook tab costs nothing.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spawn_lab.core.trace import EventKind, RawEvent

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("Lab", "TextLab", "lab")

_HINT = (
    "The interactive lab needs ipywidgets, matplotlib and networkx: "
    "pip install 'spawn-lab[lab]' (missing: {missing})."
)
_TOPOLOGY = (EventKind.REGISTER, EventKind.SPAWN, EventKind.ACTIVATE, EventKind.DEACTIVATE)


def lab(system: ActorSystem, **options: Any) -> Any:
    """The lab for ``system``: an ``AppLayout`` (its ``.lab`` is the :class:`Lab`), or text."""
    try:
        import ipywidgets  # noqa: F401
        import matplotlib  # noqa: F401
        import networkx  # noqa: F401
    except ImportError as exc:
        return TextLab(system, exc.name or str(exc))
    return Lab(system, **options).layout


class TextLab:
    """What ``lab()`` gives without the widget libraries: a summary and one clear hint."""

    def __init__(self, system: ActorSystem, missing: str) -> None:
        self.system = system
        self.missing = missing
        self.hint = _HINT.format(missing=missing)

    def __repr__(self) -> str:
        infos = self.system.actors()
        active = sum(1 for i in infos if i.active)
        lines = [f"spawn_lab lab for {self.system!r}: {len(infos)} actors, {active} active"]
        lines += [
            f"  {'●' if i.active else '○'} {i.actor_id.name} ({i.kind.name.lower()})"
            for i in sorted(infos, key=lambda i: i.actor_id.name)[:30]
        ]
        lines.append(self.hint)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"


class Lab:
    """Builds the panels, wires them together, and owns the live loop."""

    def __init__(
        self,
        system: ActorSystem,
        *,
        interval: float = 0.25,
        export_folder: str | Path | None = None,
    ) -> None:
        import ipywidgets as w

        from spawn_lab.ui.eventlog import EventLog, ExportPanel
        from spawn_lab.ui.graph_view import GraphView, track_views
        from spawn_lab.ui.inspector import Inspector
        from spawn_lab.ui.live import LiveLoop
        from spawn_lab.ui.panels import ActorList, Composer, SpawnForm, StepControls
        from spawn_lab.ui.protocol import ProtocolPanel
        from spawn_lab.ui.sequence import SequenceView
        from spawn_lab.ui.support import Background, ErrorPane

        self.system = system
        self.errors = ErrorPane()
        self.loop = LiveLoop(system.trace, interval=interval, on_error=self.errors.report)
        self.asks = Background(self.errors, workers=4)
        self.control = Background(self.errors, workers=1)
        self.graph = GraphView(system, loop=self.loop, width=6.4, height=4.6)
        self.sequence = SequenceView()
        self.log = EventLog(self.errors)
        self.actors = ActorList(system, self.errors)
        self.spawner = SpawnForm(system, self.errors)
        self.composer = Composer(system, self.errors, self.asks)
        self.inspector = Inspector(system, self.errors, self.control, recent=self.log.recent)
        self.controls = StepControls(system, self.errors, self.control)
        self.exports = ExportPanel(
            system,
            self.errors,
            folder=export_folder,
            snapshot=self.graph.png,
            payloads=lambda: dict(self.composer.payloads),
        )
        for listener in (self.graph.update, self.sequence.update, self.log.update, self._after):
            self.loop.add(listener)
        self.actors.on_select = self.errors.guard("select actor")(self.select)
        self.spawner.on_spawned = self.errors.guard("after spawn")(self.actors.choose)
        for panel in (self.composer, self.inspector, self.controls):
            panel.on_change = self.errors.guard("refresh")(self.refresh)  # type: ignore[union-attr]
        self.composer.on_sent = self.errors.guard("refresh")(self.refresh)
        self.protocol = ProtocolPanel(system, self.errors)
        centre = w.Tab(
            children=[
                self.graph.widget,
                self.sequence.widget,
                self.log.widget,
                self.protocol.widget,
                self.exports.widget,
            ]
        )
        for index, title in enumerate(("Graph", "Sequence", "Event log", "Protocol", "Exports")):
            centre.set_title(index, title)
        title = w.HTML(f"<b style='font-size:15px'>spawn_lab</b> · {html.escape(system.name)}")
        self.layout = w.AppLayout(
            header=w.VBox([title, self.controls.widget]),
            left_sidebar=w.VBox([self.actors.widget, self.spawner.widget]),
            center=centre,
            right_sidebar=w.VBox([self.composer.widget, self.inspector.widget]),
            footer=self.errors.widget,
            pane_widths=["230px", 1, "300px"],
            grid_gap="8px",
        )
        # AppLayout only takes px/fr sizes; rows that fit their content need "auto", and it
        # stays as long as the panes are not swapped (AppLayout recomputes it only then)
        self.layout.layout.grid_template_rows = "auto auto auto"
        self.layout.add_class("spawn-lab")
        self.layout.lab = self
        track_views(self.layout, self.open, self.close)
        self.errors.guard("first refresh")(self._panels)()

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Start the live loop (the front end calls this when it shows the lab)."""
        self.loop.start()
        self.refresh()

    def close(self) -> None:
        """Stop the live loop: no subscription, no thread, no cost."""
        self.loop.stop()

    def refresh(self) -> None:
        """Take in new events and bring every panel up to date, now."""
        self.loop.tick()
        self._panels()

    def select(self, name: str) -> None:
        """Inspect ``name`` and point the composer at it."""
        self.inspector.show(name)
        self.composer.target(name)

    # -- listeners ------------------------------------------------------------------------------

    def _after(self, batch: list[RawEvent]) -> None:
        if not batch:
            return
        if any(e[2] in _TOPOLOGY for e in batch):
            self.spawner.refresh()
            self.composer.refresh()
        self.actors.refresh()
        self.controls.refresh()
        self.inspector.notify(batch)

    def _panels(self) -> None:
        self.actors.refresh()
        self.spawner.refresh()
        self.composer.refresh()
        self.controls.refresh()
        self.inspector.refresh()

    def __repr__(self) -> str:
        return f"<Lab {self.system.name!r} {self.loop!r}>"
