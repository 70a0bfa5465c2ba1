"""Core model values to Spawn protobuf messages and back.

Transports never build protobuf by hand: they call these functions, so the mapping between
:mod:`spawn_lab.core.model` and ``spawn/actors/*.proto`` lives in one place. Decoding errors name
the offending field path (``actor_system.registry.actors['joe'].settings.kind``) because a remote
SDK author has nothing else to go on.

Conventions, all from ``spawn-spec.md``:

- A payload oneof is ``value`` (an ``Any``) or ``noop``; an unset payload reads as :data:`NOOP`.
- State ``None`` travels as an unset ``Any``; any other state is packed (``payloads.pack``).
- JSON values are packed as ``spawn.JSONType``; ``json_url`` lets a transport answer an SDK of the
  old ``eigr.functions.protocol`` generation under the type URL it understands.
- ``FixedTimerAction.seconds`` is milliseconds, as the proxy reads it (§7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

from spawn_lab.core.errors import PayloadError, ProtocolError, RegistrationError, SpawnLabError
from spawn_lab.core.model import (
    NOOP,
    ActorDefinition,
    ActorId,
    ActorSettings,
    Broadcast,
    Channel,
    Forward,
    HandlerKind,
    Kind,
    Pipe,
    ProjectionSubject,
    SideEffect,
    TimerAction,
    Value,
)
from spawn_lab.protocol import payloads
from spawn_lab.protocol.payloads import JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2

__all__ = (
    "DEFAULT_DEACTIVATE_MS",
    "DEFAULT_RETENTION_MS",
    "PROXY_INFO",
    "actor_id_from_pb",
    "actor_id_to_pb",
    "definition_from_pb",
    "definition_to_pb",
    "encode_any",
    "len_field",
    "pack_value",
    "payload_of",
    "registration_request",
    "response_from_value",
    "set_payload",
    "settings_from_pb",
    "settings_to_pb",
    "state_of",
    "unpack_at",
    "value_from_response",
    "workflow_to_pb",
)

#: What the proxy says about itself at registration (§2 step 6, checklist A1).
PROXY_INFO: Final = protocol_pb2.ProxyInfo(
    protocol_major_version=1,
    protocol_minor_version=2,
    proxy_name="spawn",
    proxy_version="2.0.0-RC9",
)
#: Sent when a definition says "default" (``None``): the proxy's own default (§6.1).
DEFAULT_DEACTIVATE_MS: Final = 10_000
#: Absent ``events_retention_strategy`` means one day (§8.1).
DEFAULT_RETENTION_MS: Final = 86_400_000

_KINDS: Final = frozenset(int(k) for k in Kind)
_URL_FIELDS: dict[str, bytes] = {}


class _HasPayload(Protocol):
    """Any message with a ``payload`` oneof of ``value`` (Any) or ``noop``."""

    value: any_pb2.Any

    def WhichOneof(self, name: str) -> str | None: ...


# -- ids -----------------------------------------------------------------------------------------


def actor_id_to_pb(actor_id: ActorId) -> actor_pb2.ActorId:
    return actor_pb2.ActorId(name=actor_id.name, system=actor_id.system, parent=actor_id.parent)


def actor_id_from_pb(pb: actor_pb2.ActorId, path: str = "ActorId") -> ActorId:
    """An :class:`ActorId`; the name must be set."""
    if not pb.name:
        raise ProtocolError(f"{path}.name is empty")
    return ActorId(pb.name, pb.system, pb.parent)


# -- payloads and state --------------------------------------------------------------------------


def pack_value(value: object, json_url: str = JSON_TYPE_URL) -> any_pb2.Any:
    """``payloads.pack``, newly packed JSON under ``json_url``; a given Any passes unchanged."""
    packed = payloads.pack(value)
    if json_url != JSON_TYPE_URL and packed.type_url == JSON_TYPE_URL and packed is not value:
        packed.type_url = json_url
    return packed


def unpack_at(any_value: any_pb2.Any, path: str) -> object:
    """``payloads.unpack`` whose errors name ``path``."""
    try:
        return payloads.unpack(any_value)
    except PayloadError as exc:
        raise PayloadError(f"{path}: {exc}") from exc


def encode_any(value: object, json_url: str = JSON_TYPE_URL) -> bytes:
    """``pack_value(value, json_url).SerializeToString()``, without building messages for JSON
    values (every reply of a counter is one)."""
    if isinstance(value, Message):
        return pack_value(value, json_url).SerializeToString()
    url, data = payloads.encode(value)
    if json_url != JSON_TYPE_URL:
        url = json_url
    head = _URL_FIELDS.get(url)
    if head is None:
        head = _URL_FIELDS[url] = len_field(b"\n", url.encode())
    return head + len_field(b"\x12", data)


def len_field(tag: bytes, data: bytes) -> bytes:
    """One length-delimited protobuf field: ``tag``, the varint length, ``data``."""
    size = len(data)
    if size < 0x80:
        return tag + bytes((size,)) + data
    head = bytearray(tag)
    while size >= 0x80:
        head.append((size & 0x7F) | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + data


def payload_of(message: _HasPayload, path: str) -> object:
    """The payload oneof as a Python value: ``value`` unpacked, ``noop`` or unset as NOOP."""
    if message.WhichOneof("payload") == "value":
        return unpack_at(message.value, f"{path}.value")
    return NOOP


def set_payload(message: Any, value: object, json_url: str = JSON_TYPE_URL) -> None:
    """Fill a payload oneof: NOOP as ``noop``, anything else packed into ``value``."""
    if value is NOOP:
        message.noop.SetInParent()
    else:
        message.value.CopyFrom(pack_value(value, json_url))


def state_of(holder: Any, path: str) -> tuple[bool, object]:
    """``(present, state)`` of a message's ``state`` Any field (Context, ActorState)."""
    if not holder.HasField("state"):
        return False, None
    return True, unpack_at(holder.state, f"{path}.state")


def _set_state(holder: Any, state: object, json_url: str) -> None:
    if state is not None:
        holder.state.CopyFrom(pack_value(state, json_url))


# -- settings ------------------------------------------------------------------------------------


def _timeout_ms(settings: actor_pb2.ActorSettings, field: str) -> int | None:
    """A strategy's timeout; an absent strategy (or one with no oneof set) is None."""
    if not settings.HasField(field):
        return None
    strategy = getattr(settings, field)
    if strategy.WhichOneof("strategy") != "timeout":
        return None
    return int(strategy.timeout.timeout)


def settings_from_pb(
    pb: actor_pb2.ActorSettings, path: str, kind_map: Mapping[int, Kind] | None = None
) -> ActorSettings:
    """``ActorSettings`` from the wire; ``kind_map`` translates an old SDK's Kind numbers."""
    raw_kind = int(pb.kind)
    if kind_map is not None and raw_kind in kind_map:
        kind = kind_map[raw_kind]
    elif raw_kind in _KINDS:
        kind = Kind(raw_kind)
    else:
        raise RegistrationError(f"{path}.kind: unknown Kind value {raw_kind!r}")
    projection = pb.projection_settings
    retention: int | None = DEFAULT_RETENTION_MS
    if projection.HasField("events_retention_strategy"):
        strategy = projection.events_retention_strategy
        which = strategy.WhichOneof("strategy")
        if which == "infinite" and strategy.infinite:
            retention = None
        elif which == "duration_ms":
            retention = int(strategy.duration_ms)
    subjects = tuple(
        ProjectionSubject(
            s.actor,
            s.source_action,
            s.action,
            s.start_time.ToMilliseconds() if s.HasField("start_time") else 0,
        )
        for s in projection.subjects
    )
    # POOLED actors are stateless here (as the Elixir SDK insists); a remote SDK that says
    # otherwise is registered stateless rather than refused (docs/compat.md).
    stateful = bool(pb.stateful) and kind is not Kind.POOLED
    try:
        return ActorSettings(
            kind=kind,
            stateful=stateful,
            snapshot_interval_ms=_timeout_ms(pb, "snapshot_strategy"),
            deactivate_timeout_ms=_timeout_ms(pb, "deactivation_strategy"),
            min_pool_size=int(pb.min_pool_size),
            max_pool_size=int(pb.max_pool_size),
            state_type=pb.state_type,
            sourceable=projection.sourceable,
            subjects=subjects,
            strict_events_ordering=projection.strict_events_ordering,
            events_retention_ms=retention,
        )
    except RegistrationError as exc:
        raise RegistrationError(f"{path}: {exc}") from exc


def settings_to_pb(settings: ActorSettings) -> actor_pb2.ActorSettings:
    pb = actor_pb2.ActorSettings(
        kind=int(settings.kind),  # type: ignore[arg-type]
        stateful=settings.stateful,
        min_pool_size=settings.min_pool_size,
        max_pool_size=settings.max_pool_size,
        state_type=settings.state_type,
    )
    if settings.snapshot_interval_ms is not None:
        pb.snapshot_strategy.timeout.timeout = settings.snapshot_interval_ms
    deactivate = settings.deactivate_timeout_ms
    pb.deactivation_strategy.timeout.timeout = (
        DEFAULT_DEACTIVATE_MS if deactivate is None else deactivate
    )
    if settings.sourceable or settings.subjects or settings.strict_events_ordering:
        projection = pb.projection_settings
        projection.sourceable = settings.sourceable
        projection.strict_events_ordering = settings.strict_events_ordering
        for subject in settings.subjects:
            item = projection.subjects.add(
                actor=subject.actor, source_action=subject.source_action, action=subject.action
            )
            if subject.start_time_ms:
                item.start_time.CopyFrom(timestamp_pb2.Timestamp())
                item.start_time.FromMilliseconds(subject.start_time_ms)
        if settings.events_retention_ms is None:
            projection.events_retention_strategy.infinite = True
        else:
            projection.events_retention_strategy.duration_ms = settings.events_retention_ms
    return pb


# -- definitions ---------------------------------------------------------------------------------


def definition_from_pb(
    actor: actor_pb2.Actor,
    path: str,
    *,
    host: object,
    kind_map: Mapping[int, Kind] | None = None,
    channels: Iterable[Channel] | None = None,
) -> ActorDefinition:
    """The definition of a remote SDK's actor; every action runs on ``host`` (asynchronously).

    ``channels`` replaces ``metadata.channel_group`` for SDKs whose channel group was a string.
    """
    if not actor.HasField("id"):
        raise RegistrationError(f"{path}.id is missing")
    if not actor.HasField("settings"):
        raise RegistrationError(f"{path}.settings is missing")
    name = actor.id.name
    settings = settings_from_pb(actor.settings, f"{path}.settings", kind_map)
    present, state = state_of(actor.state, f"{path}.state")
    try:
        actions = tuple(dict.fromkeys(a.name for a in actor.actions))
        timers = tuple(TimerAction(t.action.name, int(t.seconds)) for t in actor.timer_actions)
        if channels is None:
            channels = [
                Channel(c.topic, c.action or "receive") for c in actor.metadata.channel_group
            ]
        kinds = dict.fromkeys((*actions, *(t.action for t in timers)), HandlerKind.ASYNC)
        return ActorDefinition(
            name=name,
            settings=settings,
            actions=actions,
            action_kinds=kinds,
            timers=timers,
            channels=tuple(channels),
            initial_state=state if present else None,
            initial_tags=dict(actor.state.tags),
            host=host,
            remote=True,
        )
    except RegistrationError as exc:
        raise RegistrationError(f"{path}: {exc}") from exc


def definition_to_pb(
    defn: ActorDefinition, system: str, json_url: str = JSON_TYPE_URL
) -> actor_pb2.Actor:
    """``spawn.actors.Actor`` for registering a definition with a Spawn proxy.

    It always carries an ``ActorState`` and a ``Metadata`` message (checklist K66): without them
    the proxy drops state updates (§4.6), crashes stateful activations (D20) and skips warm-up.
    """
    actor = actor_pb2.Actor(
        id=actor_pb2.ActorId(name=defn.name, system=system),
        settings=settings_to_pb(defn.settings),
        actions=[actor_pb2.Action(name=a) for a in defn.actions],
        timer_actions=[
            actor_pb2.FixedTimerAction(
                seconds=t.interval_ms, action=actor_pb2.Action(name=t.action)
            )
            for t in defn.timers
        ],
    )
    if defn.settings.kind is Kind.UNNAMED:
        actor.id.parent = defn.name
    actor.state.SetInParent()
    actor.state.tags.update(defn.initial_tags)
    _set_state(actor.state, defn.initial_state, json_url)
    actor.metadata.SetInParent()
    for channel in defn.channels:
        actor.metadata.channel_group.add(topic=channel.topic, action=channel.action)
    return actor


def registration_request(
    system: str,
    definitions: Iterable[ActorDefinition],
    service_info: protocol_pb2.ServiceInfo,
    json_url: str = JSON_TYPE_URL,
) -> protocol_pb2.RegistrationRequest:
    """A ``RegistrationRequest`` for ``definitions`` in actor system ``system``."""
    request = protocol_pb2.RegistrationRequest(service_info=service_info)
    request.actor_system.name = system
    registry = request.actor_system.registry.actors
    for defn in definitions:
        registry[defn.name].CopyFrom(definition_to_pb(defn, system, json_url))
    return request


# -- invocation results ---------------------------------------------------------------------------


def _effect_from_pb(
    request: protocol_pb2.InvocationRequest, path: str, wall_ms: float
) -> SideEffect:
    if not request.actor.id.name:
        raise ProtocolError(f"{path}.actor.id.name is empty")
    if not request.action_name:
        raise ProtocolError(f"{path}.action_name is empty")
    delay = max(0, int(request.scheduled_to - wall_ms)) if request.scheduled_to else 0
    return SideEffect(
        actor=request.actor.id.name,
        action=request.action_name,
        payload=payload_of(request, path),
        metadata=dict(request.metadata),
        register_ref=request.register_ref,
        delay_ms=delay,
        system=request.system.name,
    )


def value_from_response(
    response: protocol_pb2.ActorInvocationResponse,
    *,
    wall_ms: float,
    path: str = "ActorInvocationResponse",
) -> Value:
    """Apply-ready :class:`Value` from a user function's answer, as §4.6 says, with the intended
    behaviour of D8 (no tags keeps the tags) and D9 (state updates are always kept).

    ``wall_ms`` (Unix milliseconds) turns a side effect's ``scheduled_to`` into a delay.
    Raises ProtocolError when ``updated_context`` is missing (upstream's ``:invalid_content``).
    """
    if not response.HasField("updated_context"):
        raise ProtocolError(f"{path}.updated_context is missing")
    context = response.updated_context
    kwargs: dict[str, Any] = {
        "reply": payload_of(response, path),
        "checkpoint": response.checkpoint,
    }
    present, state = state_of(context, f"{path}.updated_context")
    if present:
        kwargs["state"] = state
    if context.tags:
        kwargs["tags"] = dict(context.tags)
    if response.HasField("workflow"):
        workflow = response.workflow
        where = f"{path}.workflow"
        kwargs["effects"] = tuple(
            _effect_from_pb(e.request, f"{where}.effects[{i}].request", wall_ms)
            for i, e in enumerate(workflow.effects)
        )
        if workflow.HasField("broadcast"):
            broadcast = workflow.broadcast
            if not broadcast.channel_group:
                raise ProtocolError(f"{where}.broadcast.channel_group is empty")
            kwargs["broadcast"] = Broadcast(
                broadcast.channel_group, payload_of(broadcast, f"{where}.broadcast")
            )
        routing = workflow.WhichOneof("routing")
        if routing is not None:
            route = getattr(workflow, routing)
            if not route.actor or not route.action_name:
                raise ProtocolError(f"{where}.{routing} needs both actor and action_name")
            cls: Callable[..., Pipe | Forward] = Pipe if routing == "pipe" else Forward
            kwargs[routing] = cls(route.actor, route.action_name, route.register_ref)
    try:
        return Value(**kwargs)
    except SpawnLabError as exc:
        raise ProtocolError(f"{path}: {exc}") from exc


def workflow_to_pb(
    value: Value, source: ActorId, wall_ms: float, json_url: str = JSON_TYPE_URL
) -> protocol_pb2.Workflow | None:
    """The ``Workflow`` of a handler's Value (None if it has none), as the Elixir SDK builds it:
    side effects are async requests whose caller is the source actor (§5.2)."""
    if not (value.effects or value.broadcast or value.pipe or value.forward):
        return None
    workflow = protocol_pb2.Workflow()
    for effect in value.effects:
        request = workflow.effects.add().request
        system = effect.system or source.system
        request.system.name = system
        request.actor.id.name = effect.actor
        request.actor.id.system = system
        request.action_name = effect.action
        setattr(request, "async", True)  # a Python keyword, so no attribute syntax
        request.caller.CopyFrom(actor_pb2.ActorId(name=source.name, system=source.system))
        request.metadata.update(effect.metadata)
        request.register_ref = effect.register_ref
        if effect.delay_ms:
            request.scheduled_to = int(wall_ms) + effect.delay_ms
        set_payload(request, effect.payload, json_url)
    if value.broadcast is not None:
        workflow.broadcast.channel_group = value.broadcast.channel
        set_payload(workflow.broadcast, value.broadcast.payload, json_url)
    route = value.pipe or value.forward
    if route is not None:
        target = workflow.pipe if value.pipe is not None else workflow.forward
        target.actor = route.actor
        target.action_name = route.action
        target.register_ref = route.register_ref
    return workflow


def response_from_value(
    value: Value,
    actor_id: ActorId,
    current_state: object,
    current_tags: Mapping[str, str],
    *,
    wall_ms: float,
    json_url: str = JSON_TYPE_URL,
) -> protocol_pb2.ActorInvocationResponse:
    """What a user function answers: ``updated_context`` is always set and echoes the current
    state and tags when the handler left them alone (checklist K63), since a proxy would
    otherwise retry (no context) or clear the tags (D8)."""
    response = protocol_pb2.ActorInvocationResponse(
        actor_name=actor_id.name, actor_system=actor_id.system, checkpoint=value.checkpoint
    )
    context = response.updated_context
    context.SetInParent()
    _set_state(context, value.state if value.changes_state else current_state, json_url)
    context.tags.update(value.tags if value.tags is not None else current_tags)
    set_payload(response, value.reply, json_url)
    workflow = workflow_to_pb(value, actor_id, wall_ms, json_url)
    if workflow is not None:
        response.workflow.CopyFrom(workflow)
    return response
