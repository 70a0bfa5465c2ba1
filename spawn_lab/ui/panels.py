"""The lab's left and top panels, in stock ipywidgets: actor list, spawn form, composer, stepping.

Each panel is a small class with a ``widget`` to place and a ``refresh()`` the lab calls when
the trace says something changed. Callbacks are wrapped by the lab's :class:`ErrorPane` and
never block the kernel: an ask, a step or a run-to-idle runs on a :class:`Background` pool and
writes its result back when it is done. Widgets get CSS classes (``spawn-lab-*``) so the
browser test (and users' own styles) can find them.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from spawn_lab.core.effects import Via
from spawn_lab.core.model import NOOP
from spawn_lab.core.trace import EventKind
from spawn_lab.ui.protoform import ProtoForm, request_type
from spawn_lab.ui.support import Background, ErrorPane, parse_json, pretty

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("ActorList", "Composer", "SpawnForm", "StepControls")

_ALL_KINDS, _ALL = "all kinds", "all"
_STATUSES = (_ALL, "active", "passivated", "templates")
_STATE_OF = {"active": "active", "passivated": "passivated", "templates": "template"}


def _note(text: str, ok: bool = True) -> str:
    color = "#226622" if ok else "#b00000"
    return f"<span style='font-size:12px;color:{color}'>{html.escape(text)}</span>"


class ActorList:
    """Every actor, active or passivated (the store remembers those), with filters and counts."""

    def __init__(self, system: ActorSystem, errors: ErrorPane) -> None:
        import ipywidgets as w

        self.system = system
        self.on_select: Callable[[str], None] | None = None
        self.filter = w.Text(placeholder="filter by name", layout=w.Layout(width="98%"))
        self.kind = w.Dropdown(options=[_ALL_KINDS], value=_ALL_KINDS, layout=w.Layout(width="49%"))
        self.status = w.Dropdown(options=_STATUSES, value=_ALL, layout=w.Layout(width="49%"))
        self.select = w.Select(options=[], rows=12, layout=w.Layout(width="98%"))
        self.select.add_class("spawn-lab-actors")
        self.counts = w.HTML()
        self._updating = False
        refresh = errors.guard("actor list filter")(lambda _: self.refresh())
        for field in (self.filter, self.kind, self.status):
            field.observe(refresh, names="value")
        self.select.observe(errors.guard("actor list selection")(self._selected), names="value")
        self.widget = w.VBox(
            [
                w.HTML("<b>Actors</b>"),
                self.counts,
                self.filter,
                w.HBox([self.kind, self.status]),
                self.select,
            ]
        )

    def refresh(self) -> None:
        infos = sorted(self.system.actors(), key=lambda i: i.actor_id.name)
        kinds = Counter(i.kind.name for i in infos)
        active = sum(1 for i in infos if i.active)
        templates = sum(1 for i in infos if i.template)
        self.counts.value = (
            "<span style='font-size:12px'>"
            + " · ".join(f"{html.escape(k)} {n}" for k, n in sorted(kinds.items()))
            + f"<br>{active} active · {len(infos) - active - templates} passivated · "
            f"{templates} templates</span>"
        )
        kind_options = [_ALL_KINDS, *sorted(kinds)]
        text, kind, status = self.filter.value.strip().lower(), self.kind.value, self.status.value
        shown = []
        for info in infos:
            state = "template" if info.template else ("active" if info.active else "passivated")
            if text and text not in info.actor_id.name.lower():
                continue
            if kind != _ALL_KINDS and info.kind.name != kind:
                continue
            if status != _ALL and _STATE_OF[status] != state:
                continue
            mark = "◇" if info.template else ("●" if info.active else "○")
            extra = f" r{info.revision}" if info.revision else ""
            extra += f" ✉{info.mailbox}" if info.mailbox else ""
            shown.append(
                (
                    f"{mark} {info.actor_id.name}  ·  {info.kind.name.lower()}{extra}",
                    info.actor_id.name,
                )
            )
        self._updating = True
        try:
            if list(self.kind.options) != kind_options:
                self.kind.options = kind_options
                self.kind.value = kind if kind in kind_options else _ALL_KINDS
            current = self.select.value
            if list(self.select.options) != shown:
                self.select.options = shown
                names = [name for _, name in shown]
                self.select.value = current if current in names else None
        finally:
            self._updating = False

    def choose(self, name: str) -> None:
        """Select ``name`` (after a spawn) and tell the lab."""
        self.refresh()
        if name in [value for _, value in self.select.options]:
            self.select.value = name
        elif self.on_select is not None:
            self.on_select(name)

    def _selected(self, change: dict[str, Any]) -> None:
        if not self._updating and change["new"] and self.on_select is not None:
            self.on_select(change["new"])


class SpawnForm:
    """Spawn an instance of an UNNAMED template (Spawn's ``spawn`` request)."""

    def __init__(self, system: ActorSystem, errors: ErrorPane) -> None:
        import ipywidgets as w

        self.system = system
        self.on_spawned: Callable[[str], None] | None = None
        self.template = w.Dropdown(description="template", options=[], layout=w.Layout(width="98%"))
        self.name = w.Text(
            description="name", placeholder="instance name", layout=w.Layout(width="98%")
        )
        self.name.add_class("spawn-lab-spawn-name")
        self.revision = w.BoundedIntText(
            description="revision",
            value=0,
            min=0,
            max=2**31,
            layout=w.Layout(width="98%"),
            tooltip="start from this stored revision (0: the latest)",
        )
        self.button = w.Button(description="Spawn", button_style="success", icon="plus")
        self.button.add_class("spawn-lab-spawn")
        self.result = w.HTML()
        self.button.on_click(errors.guard("spawn")(lambda _: self.spawn()))
        self.widget = w.VBox(
            [
                w.HTML("<b>Spawn</b>"),
                self.template,
                self.name,
                self.revision,
                self.button,
                self.result,
            ]
        )

    def refresh(self) -> None:
        templates = sorted(i.actor_id.name for i in self.system.actors() if i.template)
        if list(self.template.options) != templates:
            current = self.template.value
            self.template.options = templates
            self.template.value = (
                current if current in templates else (templates[0] if templates else None)
            )
        self.button.disabled = not templates
        self.button.tooltip = (
            "" if templates else "register an UNNAMED actor to spawn instances of it"
        )

    def spawn(self) -> str:
        name: str = self.name.value.strip()
        template = self.template.value
        if not template:
            raise ValueError("no template chosen: register an actor with kind='UNNAMED' first")
        if not name:
            raise ValueError("give the new instance a name")
        self.system.spawn(name, template, revision=int(self.revision.value))
        self.result.value = _note(f"spawned {name} from {template}")
        self.name.value = ""
        if self.on_spawned is not None:
            self.on_spawned(name)
        return name


class Composer:
    """Send a message: actor, an action from its definition, a JSON payload and metadata."""

    def __init__(self, system: ActorSystem, errors: ErrorPane, background: Background) -> None:
        import ipywidgets as w

        self.system = system
        self.errors = errors
        self.background = background
        self.timeout = 30.0
        self.on_sent: Callable[[], None] | None = None
        #: payload and metadata of every invocation sent from here, for the JSONL export
        self.payloads: dict[int, tuple[object, dict[str, str]]] = {}
        self.replies = 0
        wide = w.Layout(width="98%")
        self.actor = w.Dropdown(description="actor", options=[], layout=wide)
        self.action = w.Dropdown(description="action", options=[], layout=wide)
        self.payload = w.Textarea(
            description="payload",
            placeholder='JSON, e.g. {"amount": 1}; empty sends Noop',
            rows=3,
            layout=wide,
        )
        self.payload.add_class("spawn-lab-payload")
        #: a form generated from the action's protobuf request type, when it has one
        self.form: ProtoForm | None = None
        self.payload_box = w.VBox([self.payload])
        self.metadata = w.Text(description="metadata", placeholder='{"key": "value"}', layout=wide)
        self.mode = w.ToggleButtons(
            options=["ask", "tell"], value="ask", style={"button_width": "60px"}
        )
        self.button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.button.add_class("spawn-lab-send")
        self.result = w.HTML()
        self.result.add_class("spawn-lab-result")
        self.actor.observe(errors.guard("composer actor")(lambda _: self._actions()), names="value")
        self.action.observe(errors.guard("composer action")(lambda _: self._form()), names="value")
        self.button.on_click(errors.guard("send")(lambda _: self.send()))
        self.widget = w.VBox(
            [
                w.HTML("<b>Send a message</b>"),
                self.actor,
                self.action,
                self.payload_box,
                self.metadata,
                w.HBox([self.mode, self.button]),
                self.result,
            ]
        )

    def refresh(self) -> None:
        names = sorted(i.actor_id.name for i in self.system.actors() if not i.template)
        if list(self.actor.options) != names:
            current = self.actor.value
            self.actor.options = names
            self.actor.value = current if current in names else (names[0] if names else None)
        self._actions()

    def target(self, name: str) -> None:
        """Point the composer at ``name`` (the inspector's selection)."""
        self.refresh()
        if name in self.actor.options:
            self.actor.value = name

    def _actions(self) -> None:
        name = self.actor.value
        actions: list[str] = []
        if name:
            actions = self.system.definition(name).all_actions()
            if "get" not in actions:
                actions.append("get")  # answered by the runtime with the state (§4.4)
        if list(self.action.options) != actions:
            current = self.action.value
            self.action.options = actions
            self.action.value = current if current in actions else (actions[0] if actions else None)
        self._form()

    def _form(self) -> None:
        """Show a form for the action's protobuf request type, or the JSON editor."""
        name, action = self.actor.value, self.action.value
        message_type = None
        if name and action:
            service_actor = self.system.definition(name).name  # an instance's template
            message_type = request_type(service_actor, action)
        if message_type is None:
            self.form = None
            self.payload_box.children = (self.payload,)
        elif self.form is None or self.form.message_type is not message_type:
            self.form = ProtoForm(message_type)
            self.payload_box.children = (self.form.widget,)

    def send(self) -> None:
        actor, action = self.actor.value, self.action.value
        if not actor or not action:
            raise ValueError("choose an actor and an action first")
        payload = self.form.message() if self.form else parse_json(self.payload.value, "payload")
        metadata = parse_json(self.metadata.value, "metadata")
        if metadata is NOOP:
            metadata = {}
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a JSON object of strings, got {metadata!r}")
        metadata = {str(k): str(v) for k, v in metadata.items()}
        if self.mode.value == "tell":
            invocation = self.system.tell(actor, action, payload, metadata=metadata or None)
            self.payloads[invocation] = (payload, metadata)
            self.result.value = _note(f"told {actor}.{action} (invocation #{invocation})")
            if self.on_sent is not None:
                self.on_sent()
            return
        since = self.system.trace_seq()
        held = " (the system is paused: press Step)" if self.system.paused else ""
        self.result.value = _note(f"asking {actor}.{action}…{held}")

        def ask() -> object:
            try:
                return self.system.ask(
                    actor, action, payload, metadata=metadata or None, timeout=self.timeout
                )
            finally:
                self._remember(since, actor, action, payload, metadata)

        self.background.run(f"ask {actor}.{action}", ask, done=self._answered, failed=self._failed)

    def _remember(
        self, since: int, actor: str, action: str, payload: object, metadata: dict[str, str]
    ) -> None:
        """Find the id of the ask just sent (``ask`` returns only the answer); keep its payload."""
        for event in self.system.events(since):
            if (
                event.kind is EventKind.INVOKE
                and event.actor == actor
                and event.action == action
                and event.detail[0] is Via.EXTERNAL
                and not event.detail[1]
                and event.invocation not in self.payloads
            ):
                self.payloads[event.invocation] = (payload, metadata)
                return

    def _answered(self, value: object) -> None:
        self.replies += 1
        self.result.value = (
            "<span style='font-size:12px;color:#226622'>reply:</span><pre style='margin:2px 0;"
            f"font-size:11px;max-height:120px;overflow:auto'>{pretty(value)}</pre>"
        )
        if self.on_sent is not None:
            self.on_sent()

    def _failed(self, exc: BaseException) -> None:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.result.value = _note(f"{type(exc).__name__}: {first}", ok=False)
        if self.on_sent is not None:
            self.on_sent()


class StepControls:
    """Pause, step one message, run to idle, auto-step at a chosen speed, and breakpoints."""

    def __init__(self, system: ActorSystem, errors: ErrorPane, background: Background) -> None:
        import ipywidgets as w

        self.system = system
        self.background = background
        self.on_change: Callable[[], None] | None = None
        small = w.Layout(width="auto")
        self.pause = w.ToggleButton(
            description="Pause", value=system.paused, icon="pause", layout=small
        )
        self.pause.add_class("spawn-lab-pause")
        self.step_button = w.Button(description="Step", icon="step-forward", layout=small)
        self.step_button.add_class("spawn-lab-step")
        self.run_button = w.Button(description="Run to idle", icon="fast-forward", layout=small)
        self.auto = w.Play(
            interval=500, min=0, max=10**9, step=1, description="auto-step", show_repeat=False
        )
        self.speed = w.IntSlider(
            value=2, min=1, max=20, description="steps/s", layout=w.Layout(width="220px")
        )
        self.held = w.HTML()
        self.result = w.HTML()
        self.bp_actor = w.Text(placeholder="actor or *", layout=w.Layout(width="110px"))
        self.bp_action = w.Text(placeholder="action or *", layout=w.Layout(width="110px"))
        self.bp_add = w.Button(description="Break on", icon="stop-circle", layout=small)
        self.bp_clear = w.Button(description="Clear", layout=small)
        self.breakpoints = w.HTML()
        guard = errors.guard
        self.pause.observe(guard("pause")(self._paused), names="value")
        self.step_button.on_click(guard("step")(lambda _: self.step()))
        self.run_button.on_click(guard("run to idle")(lambda _: self.run_to_idle()))
        self.auto.observe(guard("auto-step")(self._auto), names="value")
        self.speed.observe(guard("speed")(self._speed), names="value")
        self.bp_add.on_click(guard("add breakpoint")(lambda _: self.add_breakpoint()))
        self.bp_clear.on_click(guard("clear breakpoints")(lambda _: self.clear_breakpoints()))
        self._stepping = False
        self._speed({"new": self.speed.value})
        self.widget = w.VBox(
            [
                w.HBox(
                    [
                        self.pause,
                        self.step_button,
                        self.run_button,
                        self.auto,
                        self.speed,
                        self.held,
                    ]
                ),
                w.HBox(
                    [
                        w.HTML("breakpoint:"),
                        self.bp_actor,
                        self.bp_action,
                        self.bp_add,
                        self.bp_clear,
                        self.breakpoints,
                        self.result,
                    ]
                ),
            ]
        )

    def refresh(self) -> None:
        paused = self.system.paused
        if self.pause.value != paused:  # a breakpoint paused it
            self.pause.value = paused
        held = len(self.system.held())
        self.held.value = _note(f"{held} held" if paused else "running", ok=True)
        self.step_button.disabled = not paused
        points = sorted(self.system.breakpoints)
        self.breakpoints.value = (
            "<span style='font-size:12px'>"
            + html.escape(", ".join(f"{a}.{b}" for a, b in points) or "none")
            + "</span>"
        )

    def _paused(self, change: dict[str, Any]) -> None:
        if change["new"] and not self.system.paused:
            self.system.pause()
        elif not change["new"] and self.system.paused:
            self.system.resume()
        self.pause.description = "Paused" if change["new"] else "Pause"
        self._changed()

    def step(self) -> None:
        """Deliver one held message (in the background: its handler may take a while)."""
        if self._stepping:
            return
        self._stepping = True

        def done(result: Any) -> None:
            self._stepping = False
            self.result.value = _note(
                f"stepped {result!r}" if result is not None else "nothing held"
            )
            self._changed()

        def failed(exc: BaseException) -> None:
            self._stepping = False
            self.result.value = _note(f"step failed: {exc}", ok=False)

        self.background.run("step", self.system.step, done=done, failed=failed)

    def run_to_idle(self) -> None:
        def done(steps: int) -> None:
            self.result.value = _note(f"idle after {steps} steps" if steps else "idle")
            self._changed()

        self.background.run("run to idle", self.system.run_until_idle, done=done)

    def add_breakpoint(self) -> None:
        actor = self.bp_actor.value.strip() or "*"
        action = self.bp_action.value.strip() or "*"
        if actor == "*" and action == "*":
            raise ValueError("a breakpoint on every message is Pause: name an actor or an action")
        self.system.break_on(actor, action)
        self._changed()

    def clear_breakpoints(self) -> None:
        self.system.clear_breakpoints()
        self._changed()

    def _auto(self, change: dict[str, Any]) -> None:
        if self.system.paused and self.system.held():
            self.step()

    def _speed(self, change: dict[str, Any]) -> None:
        self.auto.interval = max(50, int(1000 / max(int(change["new"]), 1)))

    def _changed(self) -> None:
        self.refresh()
        if self.on_change is not None:
            self.on_change()
