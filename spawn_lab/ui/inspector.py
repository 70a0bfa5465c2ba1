"""The inspector: one actor's state, tags, revision, mailbox and recent messages, and its controls.

Deactivate is always there. Crash injection and the revision history (a Play + slider scrubber
with a restore button) appear only when the runtime offers them (:mod:`spawn_lab.ui.hooks`):
a disabled button whose tooltip names the missing call is honest, a simulated one is not.
The scrubber's Play drives the slider through ``jslink`` in the browser, so playing through
history costs one kernel round trip per revision shown and nothing else.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from spawn_lab.core.trace import EventKind, RawEvent
from spawn_lab.ui import hooks
from spawn_lab.ui.support import Background, ErrorPane, pretty

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("Inspector",)

_PRE = (
    "<pre style='margin:2px 0;font-size:11px;max-height:{h}px;overflow:auto;"
    "background:#f7f7f9'>{t}</pre>"
)


class Inspector:
    """Shows the selected actor; ``recent(name)`` supplies its recent trace events."""

    def __init__(
        self,
        system: ActorSystem,
        errors: ErrorPane,
        background: Background,
        recent: Callable[[str], list[RawEvent]] | None = None,
    ) -> None:
        import ipywidgets as w

        self.system = system
        self.background = background
        self.recent = recent or (lambda name: [])
        self.on_change: Callable[[], None] | None = None
        self.name: str | None = None
        self.header = w.HTML("<i>select an actor</i>")
        self.state = w.HTML()
        self.state.add_class("spawn-lab-state")
        self.details = w.HTML()
        self.mailbox = w.HTML()
        self.messages = w.HTML()
        small = w.Layout(width="auto")
        self.deactivate_button = w.Button(description="Deactivate", icon="power-off", layout=small)
        self.crash_button = w.Button(
            description="Crash", icon="bolt", button_style="danger", layout=small
        )
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=small)
        guard = errors.guard
        self.deactivate_button.on_click(guard("deactivate")(lambda _: self.deactivate()))
        self.crash_button.on_click(guard("crash")(lambda _: self.crash()))
        self.refresh_button.on_click(guard("inspector refresh")(lambda _: self.refresh()))
        if not hooks.has(system, "crash"):
            self.crash_button.disabled = True
            self.crash_button.tooltip = hooks.missing_hint("crash")
        self.play = w.Play(
            interval=700, min=0, max=0, step=1, show_repeat=False, layout=w.Layout(width="110px")
        )
        self.slider = w.IntSlider(
            min=0, max=0, continuous_update=False, readout=False, layout=w.Layout(width="130px")
        )
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.past = w.HTML()
        self.restore_button = w.Button(description="Restore", icon="history", layout=small)
        self.slider.observe(
            guard("revision scrubber")(lambda _: self._show_revision()), names="value"
        )
        self.restore_button.on_click(guard("restore")(lambda _: self.restore()))
        self.history_box = w.VBox(
            [
                w.HTML("<span style='font-size:12px'>revision history</span>"),
                w.HBox([self.play, self.slider]),
                self.restore_button,
                self.past,
            ]
        )
        if not hooks.has(system, "revisions"):
            self.history_box.children = (
                w.HTML(
                    "<span style='font-size:11px;color:#777'>"
                    f"{html.escape(hooks.missing_hint('revisions'))}</span>"
                ),
            )
        self.revisions: list[Any] = []
        self.widget = w.VBox(
            [
                w.HTML("<b>Inspector</b>"),
                self.header,
                w.HBox([self.refresh_button, self.deactivate_button, self.crash_button]),
                self.state,
                self.details,
                self.mailbox,
                self.messages,
                self.history_box,
            ]
        )
        self.widget.add_class("spawn-lab-inspector")

    def show(self, name: str) -> None:
        """Inspect ``name`` from now on."""
        self.name = name
        self.refresh()

    def notify(self, batch: list[RawEvent]) -> None:
        """A LiveLoop listener: refresh if the batch touched the inspected actor.

        The revision history is re-read only when the actor saved: listing it flushes the
        write-behind queue, which costs a store transaction.
        """
        name = self.name
        mine = [e for e in batch if e[5] == name or _caller(e) == name] if name else []
        if mine:
            self.refresh(history=any(e[2] is EventKind.SAVE for e in mine))

    def refresh(self, *, history: bool = True) -> None:
        name = self.name
        if name is None:
            return
        info = next((i for i in self.system.actors() if i.actor_id.name == name), None)
        state, tags, revision = self.system.inspect(name)
        kind = info.kind.name if info else "?"
        status = (
            "template"
            if info and info.template
            else ("active" if info and info.active else "passivated")
        )
        parent = (
            f" · from {html.escape(info.actor_id.parent)}" if info and info.actor_id.parent else ""
        )
        self.header.value = (
            f"<b>{html.escape(name)}</b> <span style='font-size:12px'>{kind} · {status} · "
            f"revision {revision}{parent}</span>"
        )
        self.state.value = "<span style='font-size:12px'>state</span>" + _PRE.format(
            h=220, t=pretty(state)
        )
        self.details.value = "<span style='font-size:12px'>tags</span>" + _PRE.format(
            h=80, t=pretty(tags)
        )
        queued = self.system.mailbox(name)
        rows = "".join(
            f"#{inv.id} {html.escape(inv.action)} ({inv.via.value}"
            f"{', from ' + html.escape(inv.caller.name) if inv.caller else ''})\n"
            for inv in queued
        )
        self.mailbox.value = f"<span style='font-size:12px'>mailbox: {len(queued)}</span>" + (
            _PRE.format(h=90, t=rows) if rows else ""
        )
        recent = self.recent(name)[-12:]
        lines = "".join(
            f"{e[0]:>6} {e[2].value:<10} #{e[3]} {html.escape(e[6])}"
            f"{' ← #' + str(e[4]) if e[4] else ''}{_short(e)}\n"
            for e in reversed(recent)
        )
        self.messages.value = "<span style='font-size:12px'>recent events</span>" + _PRE.format(
            h=160, t=lines or "(none seen since the lab opened)"
        )
        self.deactivate_button.disabled = status != "active"
        if history:
            self._history()

    def deactivate(self) -> None:
        if self.name is None:
            raise ValueError("select an actor first")
        self.system.deactivate(self.name)
        self._changed()

    def crash(self) -> None:
        if self.name is None:
            raise ValueError("select an actor first")
        if not hooks.has(self.system, "crash"):
            raise RuntimeError(hooks.missing_hint("crash"))
        cast(Any, self.system).crash(self.name)  # feature-detected: not in every runtime
        self._changed()

    def restore(self) -> None:
        """Restore the revision under the scrubber (in the background: it queues a message)."""
        name = self.name
        if name is None or not self.revisions:
            raise ValueError("select an actor with stored revisions first")
        if not hooks.has(self.system, "restore"):
            raise RuntimeError(hooks.missing_hint("restore"))
        revision = self.revisions[self.slider.value].revision
        self.past.value = f"<span style='font-size:11px'>restoring revision {revision}…</span>"

        def done(new: int) -> None:
            self._changed()  # the scrubber moves to the new, latest revision
            self.past.value = (
                f"<span style='font-size:11px;color:#226622'>restored revision {revision} "
                f"as revision {new}</span><br>{self.past.value}"
            )

        restore = self.system.restore
        self.background.run(f"restore {name}", lambda: restore(name, revision), done=done)

    def _history(self) -> None:
        if self.name is None or not hooks.has(self.system, "revisions"):
            return
        self.revisions = list(self.system.revisions(self.name))
        top = max(len(self.revisions) - 1, 0)
        self.play.max = top
        self.slider.max = top
        self.restore_button.disabled = not self.revisions or not hooks.has(self.system, "restore")
        if self.slider.value != top:
            self.slider.value = top
        else:
            self._show_revision()

    def _show_revision(self) -> None:
        if self.name is None or not self.revisions:
            self.past.value = (
                "<span style='font-size:11px;color:#777'>no stored revisions yet</span>"
            )
            return
        info = self.revisions[min(self.slider.value, len(self.revisions) - 1)]
        when = time.strftime("%H:%M:%S", time.localtime(info.timestamp)) if info.timestamp else ""
        text = f"revision {info.revision} of {len(self.revisions)} · {info.status} · {when}"
        state = ""
        if hooks.has(self.system, "state_at"):
            value = self.system.state_at(self.name, revision=info.revision)
            state = _PRE.format(h=140, t=pretty(value))
        self.past.value = f"<span style='font-size:11px'>{html.escape(text)}</span>{state}"

    def _changed(self) -> None:
        self.refresh()
        if self.on_change is not None:
            self.on_change()


def _caller(event: RawEvent) -> str:
    detail = event[7]
    return (
        detail[1]
        if type(detail) is tuple and len(detail) > 1 and isinstance(detail[1], str)
        else ""
    )


def _short(event: RawEvent) -> str:
    detail = event[7]
    if detail is None:
        return ""
    if type(detail) is tuple and detail and hasattr(detail[0], "value"):
        via, caller = detail[0].value, detail[1]
        return f" ({via}{' from ' + html.escape(caller) if caller else ''})"
    text = str(detail).splitlines()[0] if str(detail) else ""
    return " " + html.escape(text[:60])
