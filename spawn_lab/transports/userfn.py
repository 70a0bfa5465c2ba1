"""The user-function side: run a notebook system's actors for an external Spawn proxy.

A real Spawn proxy (or ``spawn-lab serve`` in another process) owns the actors' state and sends
``ActorInvocation`` messages to ``POST /api/v1/actors/actions``; this module answers them from the
actors registered in a local :class:`~spawn_lab.runtime.system.ActorSystem`. The handler runs with
the state and tags the proxy sent; the local system's own copy of the actor is not involved.

Answers follow checklist K: ``updated_context`` is always present and echoes the state and tags
the handler left alone (K63); the implementation is found by ``actor.name``, then by
``actor.parent`` for spawned instances (K64). An unknown actor or action, or a handler that
raises, is answered with a non-2xx plain-text body, which a proxy cannot mistake for success.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

from google.protobuf.message import DecodeError

from spawn_lab.core.errors import PayloadError, SpawnLabError
from spawn_lab.core.model import ActorDefinition, ActorId, HandlerKind
from spawn_lab.protocol import codec
from spawn_lab.protocol.payloads import JSON_TYPE_URL, LEGACY_JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.runtime.actors import Context, as_value
from spawn_lab.transports.wire import Answer

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("act_async", "local_definition")

_WHERE: Final = "ActorInvocation"


def local_definition(system: ActorSystem, actor: ActorId) -> ActorDefinition | None:
    """The notebook definition serving ``actor``: by name, then by parent (K64); remote ones
    (registered by an SDK) are not ours to run."""
    for name in (actor.name, actor.parent):
        if not name:
            continue
        try:
            defn = system.definition(name)
        except SpawnLabError:
            continue
        if not defn.remote:
            return defn
    return None


def _text(message: str, http: int) -> Answer:
    return Answer(message.encode(), http)


async def act_async(system: ActorSystem, body: bytes) -> Answer:
    """ActorInvocation bytes in, ActorInvocationResponse bytes out (or a plain-text refusal).

    Plain-function handlers run in a worker thread, so a slow one delays only its own call.
    """
    try:
        invocation = protocol_pb2.ActorInvocation.FromString(body)
    except DecodeError as exc:
        return _text(f"body does not decode as spawn.ActorInvocation: {exc}", 400)
    pb_id = invocation.actor
    if not pb_id.name:
        return _text("ActorInvocation.actor.name is empty", 400)
    self_id = ActorId(pb_id.name, pb_id.system, pb_id.parent)
    defn = local_definition(system, self_id)
    action = invocation.action_name
    if defn is None:
        return _text(f"Actor {self_id.name} not found in user function {system.name!r}", 404)
    kind = defn.action_kinds.get(action)
    if kind is None:
        actions = ", ".join(defn.all_actions()) or "none"
        return _text(
            f"Action [{action}] not found for Actor [{self_id.name}] (its actions: {actions})", 404
        )
    context = invocation.current_context
    try:
        present, state = codec.state_of(context, f"{_WHERE}.current_context")
        payload = codec.payload_of(invocation, _WHERE)
    except PayloadError as exc:
        return _text(str(exc), 400)
    caller = None
    if invocation.HasField("caller"):
        caller = ActorId(invocation.caller.name, invocation.caller.system, invocation.caller.parent)
    tags = dict(context.tags)
    ctx = Context(state, tags, dict(context.metadata), caller, self_id, action, 0, system)
    handler = defn.host.handler(action)  # type: ignore[attr-defined]
    try:
        if kind is HandlerKind.ASYNC:
            result = await handler(ctx, payload)
        else:
            result = await asyncio.to_thread(handler, ctx, payload)
        value = as_value(result)
        response = codec.response_from_value(
            value,
            self_id,
            context.state if present else None,  # echo the proxy's own bytes when unchanged
            tags,
            wall_ms=time.time() * 1000,
            json_url=_json_url(invocation),
        )
    except Exception as exc:  # the handler's failure is the proxy's answer, not our crash
        return _text(f"{self_id.name}.{action} raised {type(exc).__name__}: {exc}", 500)
    return Answer(response.SerializeToString())


def _json_url(invocation: protocol_pb2.ActorInvocation) -> str:
    """Answer JSON under the type URL the proxy itself used, if it used the old one (rule L3)."""
    context = invocation.current_context
    for any_value in (invocation.value, context.state):
        if any_value.type_url == LEGACY_JSON_TYPE_URL:
            return LEGACY_JSON_TYPE_URL
    return JSON_TYPE_URL
