"""The decoded protocol view: the Spawn messages one invocation would be on the wire.

For a selected invocation it rebuilds, from the trace, the ``InvocationRequest`` a client sends
to the proxy, the ``ActorInvocation`` the proxy sends to the user function, and the
``ActorInvocationResponse`` it gets back (spec §4.5, §4.6), and shows them as protobuf text.
Local and remote actors look the same here, which is the point: this is what Spawn would see.
The trace keeps no tags, so ``tags`` maps are left empty.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format
from google.protobuf.message import Message

from spawn_lab.core.model import NOOP
from spawn_lab.core.trace import EventKind, TraceEvent
from spawn_lab.protocol import codec
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2
from spawn_lab.ui.support import ErrorPane

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("ProtocolMessages", "ProtocolPanel", "protocol_messages")

_NONE = object()


@dataclass(frozen=True)
class ProtocolMessages:
    """The three messages of one invocation (``response`` is None while it is unanswered)."""

    invocation: int
    request: protocol_pb2.InvocationRequest
    actor_invocation: protocol_pb2.ActorInvocation
    response: protocol_pb2.ActorInvocationResponse | None

    def as_text(self) -> dict[str, str]:
        parts: dict[str, Message | None] = {
            "InvocationRequest": self.request,
            "ActorInvocation": self.actor_invocation,
            "ActorInvocationResponse": self.response,
        }
        return {
            name: text_format.MessageToString(msg) if msg is not None else "(no answer yet)"
            for name, msg in parts.items()
        }

    def _repr_html_(self) -> str:
        blocks = "".join(
            f"<div><b>{name}</b><pre style='margin:2px 0 8px'>{html.escape(text)}</pre></div>"
            for name, text in self.as_text().items()
        )
        return f"<div><b>Invocation #{self.invocation} on the wire</b>{blocks}</div>"


def _state_before(events: list[TraceEvent], actor: str, seq: int, initial: object) -> object:
    state = initial
    for event in events:
        if event.seq >= seq:
            break
        if event.kind is EventKind.STATE and event.actor == actor:
            state = event.detail
    return state


def protocol_messages(system: ActorSystem, invocation: int) -> ProtocolMessages:
    """Rebuild the Spawn messages of ``invocation`` from the trace; KeyError if it is gone."""
    events = system.events()
    mine = [e for e in events if e.invocation == invocation]
    invoke = next((e for e in mine if e.kind is EventKind.INVOKE), None)
    if invoke is None:
        raise KeyError(f"invocation #{invocation} is not in the trace (it keeps the newest events)")
    _, caller_name, asynchronous, payload, metadata = (*tuple(invoke.detail), NOOP, {})[:5]
    system_name = system.name
    target = actor_pb2.ActorId(name=invoke.actor, system=system_name)
    caller = actor_pb2.ActorId(name=caller_name, system=system_name) if caller_name else None

    request = protocol_pb2.InvocationRequest(action_name=invoke.action, metadata=dict(metadata))
    request.system.name = system_name
    request.actor.id.CopyFrom(target)
    setattr(request, "async", bool(asynchronous))  # a Python keyword
    if caller is not None:
        request.caller.CopyFrom(caller)
    codec.set_payload(request, payload)

    try:
        initial = system.definition(invoke.actor).initial_state
    except Exception:  # an actor registered elsewhere: no initial state to show
        initial = None
    before = _state_before(events, invoke.actor, invoke.seq, initial)
    actor_invocation = protocol_pb2.ActorInvocation(action_name=invoke.action)
    actor_invocation.actor.CopyFrom(target)
    context = actor_invocation.current_context
    context.SetInParent()
    context.self.CopyFrom(target)
    context.metadata.update(dict(metadata))
    if before is not None:
        context.state.CopyFrom(codec.pack_value(before))
    if caller is not None:
        actor_invocation.caller.CopyFrom(caller)
        context.caller.CopyFrom(caller)
    codec.set_payload(actor_invocation, payload)

    response = _response(mine, invoke.actor, system_name, before)
    return ProtocolMessages(invocation, request, actor_invocation, response)


def _response(
    mine: list[TraceEvent], actor: str, system_name: str, before: object
) -> protocol_pb2.ActorInvocationResponse | None:
    reply = next((e for e in mine if e.kind in (EventKind.REPLY, EventKind.FAIL)), None)
    if reply is None or reply.kind is EventKind.FAIL:
        return None
    after: Any = next((e.detail for e in mine if e.kind is EventKind.STATE), _NONE)
    response = protocol_pb2.ActorInvocationResponse(actor_name=actor, actor_system=system_name)
    context = response.updated_context
    context.SetInParent()
    state = before if after is _NONE else after
    if state is not None:
        context.state.CopyFrom(codec.pack_value(state))
    if isinstance(reply.detail, tuple) and reply.detail:
        codec.set_payload(response, reply.detail[0])
    return response


class ProtocolPanel:
    """Pick an invocation id, see its messages as protobuf text."""

    def __init__(self, system: ActorSystem, errors: ErrorPane) -> None:
        import ipywidgets as w

        self.system = system
        self.number = w.BoundedIntText(min=0, max=2**62, description="invocation #")
        self.show_button = w.Button(description="Decode", icon="search")
        self.output = w.HTML()
        self.show_button.on_click(errors.guard("decode invocation")(lambda _: self.show()))
        self.widget = w.VBox([w.HBox([self.number, self.show_button]), self.output])

    def show(self, invocation: int | None = None) -> ProtocolMessages:
        if invocation is not None:
            self.number.value = invocation
        messages = protocol_messages(self.system, int(self.number.value))
        self.output.value = messages._repr_html_()
        return messages
