"""A live picture of the mesh in an ``ipywidgets.Image``, redrawn at most 4 times a second.

The view costs nothing until it is shown: it subscribes to the trace bus when a front end
displays it (the widget's ``_view_count`` goes above zero, or :meth:`GraphView.open` is
called) and unsubscribes when the last view closes. In between, a :class:`LiveLoop` thread
hands it batches of events; it folds them into a :class:`FlowModel` and, only if something
changed (or a pulse is still fading), renders a frame and assigns the PNG to the Image.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spawn_lab.core.trace import RawEvent
from spawn_lab.ui.flow import FlowModel
from spawn_lab.ui.live import ErrorSink, LiveLoop
from spawn_lab.ui.render import GraphRenderer, describe

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("GraphView", "track_views")


def track_views(widget: Any, on_open: Callable[[], None], on_close: Callable[[], None]) -> None:
    """Call ``on_open`` when a front end first shows ``widget``, ``on_close`` when none does.

    Uses the widget's ``_view_count`` trait, which JupyterLab and Notebook 7 keep up to date
    once it is not ``None`` (ipywidgets marks it experimental, so views also offer explicit
    ``open()`` and ``close()``).
    """
    widget._view_count = 0

    def changed(change: dict[str, Any]) -> None:
        new, old = change["new"] or 0, change["old"] or 0
        if new > 0 and old == 0:
            on_open()
        elif new == 0 and old > 0:
            on_close()

    widget.observe(changed, names="_view_count")


class GraphView:
    """The mesh as a live image. ``view.widget`` is the ipywidgets object to place in a layout.

    Pass ``loop`` to share one :class:`LiveLoop` with other views (the lab does); otherwise the
    view owns a loop and opens and closes it with its own visibility.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        loop: LiveLoop | None = None,
        interval: float = 0.25,
        on_error: ErrorSink | None = None,
        width: float = 7.2,
        height: float = 4.8,
        dpi: int = 100,
        max_labels: int = 40,
    ) -> None:
        import ipywidgets as widgets

        self.system = system
        self.model = FlowModel()
        self.renderer = GraphRenderer(width=width, height=height, dpi=dpi, max_labels=max_labels)
        self.image = widgets.Image(
            format="png", layout=widgets.Layout(width="100%", max_width=f"{int(width * dpi)}px")
        )
        self.image.add_class("spawn-lab-graph")
        self.status = widgets.HTML()
        self.widget = widgets.VBox([self.status, self.image])
        self.frames = 0
        self._owns_loop = loop is None
        self.loop = (
            loop
            if loop is not None
            else LiveLoop(system.trace, interval=interval, on_error=on_error)
        )
        self.loop.add(self.update)
        self._fading = 0
        self._described = False
        if self._owns_loop:
            track_views(self.image, self.open, self.close)

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Start watching: subscribe, catch up from the trace ring, draw at once, then live."""
        self.loop.start()
        self.refresh()

    def close(self) -> None:
        """Stop watching; nothing is recorded or drawn until the next :meth:`open`."""
        if self._owns_loop:
            self.loop.stop()

    def refresh(self) -> None:
        """Take in whatever happened and draw now (the loop does this on its own while open)."""
        self.loop.tick()

    # -- the listener ---------------------------------------------------------------------------

    def update(self, batch: list[RawEvent]) -> None:
        """Fold a batch in; draw if anything changed or a message pulse is still fading."""
        if not self._described:
            self.model.describe(self.system.actors())
            self._described = True
        if self.model.feed(batch):
            self._fading = self.renderer.pulse_frames
        elif self.frames and self._fading <= 0:
            return
        else:
            self._fading -= 1
        self.draw()

    def draw(self) -> None:
        """Render a frame into the Image (under the loop's lock: the model must hold still)."""
        with self.loop.lock:
            png = self.renderer.render(self.model, status="")
            self.frames += 1
            self.image.value = png
            self.status.value = (
                f"<span style='font-size:11px;color:#444'>{html.escape(describe(self.model))} · "
                f"frame {self.renderer.last_frame_ms:.0f} ms</span>"
            )

    def png(self) -> bytes:
        """A snapshot with the summary line printed in, for exports and reports."""
        with self.loop.lock:
            self.loop.tick()
            return self.renderer.render(self.model)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget, plus a PNG snapshot for places that cannot run widgets.

        JupyterLab shows the widget; nbconvert, GitHub and other static viewers pick the PNG,
        so an executed notebook still shows the mesh.
        """
        bundle: dict[str, Any] = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["image/png"] = base64.b64encode(self.png()).decode("ascii")
        return bundle

    def __repr__(self) -> str:
        return f"<GraphView {describe(self.model)}; {self.loop!r}>"
