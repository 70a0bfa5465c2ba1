"""Spawn's proxy API as bytes in, bytes out: invoke, register, spawn and read state.

This is the whole proxy behaviour of ``spawn-spec.md`` §1.2 without HTTP, so the HTTP server,
tests and benchmarks share it and a notebook can feed real SDK bytes straight into a system. Every
function returns an :class:`Answer`: the response message's bytes, with the HTTP status code they
go out with in ``.http``. Failures are answers too (a protobuf body with ``Status.ERROR`` or
``ACTOR_NOT_FOUND``), because SDKs read the body and ignore the status code.

Deliberate divergences from upstream (``docs/compat.md``): an unknown actor or system is answered
``ACTOR_NOT_FOUND`` at once instead of after a 60 s retry window; errors carry precise HTTP codes
(:mod:`spawn_lab.protocol.status`) and messages with their details instead of a bare 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from google.protobuf.message import DecodeError

from spawn_lab.core.errors import (
    ActionNotFoundError,
    ActorNotFoundError,
    InvocationError,
    PayloadError,
    ProtocolError,
    SpawnLabError,
)
from spawn_lab.core.model import NOOP, ActorDefinition
from spawn_lab.protocol import codec, legacy
from spawn_lab.protocol.payloads import JSON_TYPE_URL, LEGACY_JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2
from spawn_lab.protocol.status import status_for

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = (
    "Answer",
    "HostFactory",
    "invoke_async",
    "invoke_bytes",
    "register_bytes",
    "spawn_bytes",
    "state_bytes",
)

#: Builds the host that runs a registering SDK's actions (a RemoteHost), given what we know of it.
HostFactory = Callable[[legacy.SdkProfile], object]

#: InvocationResponse.status = RequestStatus{OK} and InvocationResponse.noop, serialized.
_OK_FIELD: Final = codec.len_field(
    b"\n", protocol_pb2.RequestStatus(status=protocol_pb2.OK).SerializeToString()
)
_NOOP_FIELD: Final = b"*\x00"
_ACCEPTED: Final = protocol_pb2.RequestStatus(status=protocol_pb2.OK, message="Accepted")
_REQUEST_TIMEOUT: Final = "request-timeout"


class Answer(bytes):
    """Serialized response bytes; ``http`` is the status code to send them with."""

    http: int

    def __new__(cls, data: bytes, http: int = 200) -> Answer:
        answer = super().__new__(cls, data)
        answer.http = http
        return answer


# -- invoke ----------------------------------------------------------------------------------------


class _Call:
    """One decoded InvocationRequest, ready for ``ask``/``tell``."""

    __slots__ = (
        "action",
        "actor",
        "delay",
        "json_url",
        "metadata",
        "payload",
        "request",
        "timeout",
    )

    def __init__(
        self, request: protocol_pb2.InvocationRequest, actor: str, action: str, json_url: str
    ) -> None:
        self.request = request
        self.actor = actor
        self.action = action
        self.json_url = json_url
        self.metadata: Mapping[str, str] | None = None
        self.payload: object = NOOP
        self.delay: float | None = None
        self.timeout: float | None = None

    def ok(self, result: object, asynchronous: bool = False) -> Answer:
        """InvocationResponse OK with the request's system and actor echoed (checklist A4, A5).

        Written field by field rather than through a message object: this is the reply to
        every invocation, and the fields are few and fixed (tests compare it with protobuf's).
        """
        request = self.request
        parts = [
            _OK_FIELD,
            codec.len_field(b"\x12", request.system.SerializeToString()),
            codec.len_field(b"\x1a", request.actor.SerializeToString()),
        ]
        if not asynchronous:
            if result is NOOP:
                parts.append(_NOOP_FIELD)
            else:
                parts.append(codec.len_field(b'"', codec.encode_any(result, self.json_url)))
        return Answer(b"".join(parts))

    def failed(self, system: ActorSystem, exc: Exception) -> Answer:
        # A reply that cannot be encoded is the actor's fault, not the caller's: 500, not 400.
        http = 500 if isinstance(exc, PayloadError) else None
        return _invoke_error(exc, _message(system, self, exc), http)


def _invoke_error(exc: BaseException, message: str, http: int | None = None) -> Answer:
    wire = status_for(exc)
    response = protocol_pb2.InvocationResponse(
        status=protocol_pb2.RequestStatus(status=wire.status, message=message)  # type: ignore[arg-type]
    )
    return Answer(response.SerializeToString(), http or wire.http)


def _message(system: ActorSystem, call: _Call, exc: Exception) -> str:
    """Upstream's message forms (§1.2 H3), with the details a person needs to fix the call."""
    if isinstance(exc, ActionNotFoundError):
        try:
            actions = ", ".join(system.definition(call.actor).all_actions()) or "none"
        except SpawnLabError:
            actions = "unknown"
        return f"Action [{call.action}] not found for Actor [{call.actor}] (its actions: {actions})"
    if isinstance(exc, ActorNotFoundError) and not call.request.register_ref:
        return f"Actor {call.actor} not found on ActorSystem {system.name}"
    if isinstance(exc, InvocationError):
        return str(exc.args[0]) if exc.args else type(exc).__name__  # no handler traceback
    if isinstance(exc, PayloadError):
        return f"the reply of {call.actor}.{call.action} cannot be sent: {exc}"
    if isinstance(exc, SpawnLabError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def _parse(system: ActorSystem, body: bytes, json_url: str) -> _Call | Answer:
    """Decode and check an InvocationRequest; an Answer means it is refused."""
    try:
        request = protocol_pb2.InvocationRequest.FromString(body)
    except DecodeError as exc:
        message = f"body does not decode as spawn.InvocationRequest: {exc}"
        return _invoke_error(ProtocolError(), message, 400)
    system_name = request.system.name
    actor = request.actor.id.name
    action = request.action_name
    if not (system_name and actor and action):
        empty = next(
            path
            for path, value in (
                ("system.name", system_name),
                ("actor.id.name", actor),
                ("action_name", action),
            )
            if not value
        )
        return _invoke_error(ProtocolError(), f"InvocationRequest.{empty} is empty", 400)
    if system_name != system.name:
        message = (
            f"Actor {actor} not found on ActorSystem {system_name} "
            f"(this proxy serves actor system {system.name!r})"
        )
        return _invoke_error(ActorNotFoundError(), message)
    call = _Call(request, actor, action, json_url)
    if request.HasField("value"):
        value = request.value
        if value.type_url == LEGACY_JSON_TYPE_URL:
            call.json_url = LEGACY_JSON_TYPE_URL  # answer in the caller's own dialect (rule L3)
        try:
            call.payload = codec.unpack_at(value, "InvocationRequest.value")
        except PayloadError as exc:
            return _invoke_error(exc, str(exc))
    if request.metadata:
        metadata = call.metadata = dict(request.metadata)
        raw = metadata.get(_REQUEST_TIMEOUT)
        if raw is not None:
            try:
                call.timeout = int(raw) / 1000
            except ValueError:
                message = f"metadata {_REQUEST_TIMEOUT!r} must be whole milliseconds, got {raw!r}"
                return _invoke_error(ProtocolError(), message, 400)
    if request.scheduled_to:
        call.delay = max(0.0, request.scheduled_to / 1000 - system.clock.wall())
    return call


def _tell(system: ActorSystem, call: _Call) -> Answer:
    """Async and delayed calls: queued, then answered OK with no payload (A5, C26, C27)."""
    system.tell(
        call.actor,
        call.action,
        call.payload,
        metadata=call.metadata,
        delay=call.delay or 0.0,
        register_ref=call.request.register_ref,
    )
    return call.ok(NOOP, asynchronous=True)


def invoke_bytes(system: ActorSystem, body: bytes, *, json_url: str = JSON_TYPE_URL) -> Answer:
    """InvocationRequest bytes in, InvocationResponse bytes out, from a plain thread.

    ``json_url`` is the type URL for JSON replies when the request itself carried no JSON.
    """
    call = _parse(system, body, json_url)
    if isinstance(call, Answer):
        return call
    request = call.request
    try:
        if call.delay is not None or getattr(request, "async"):
            return _tell(system, call)
        result = system.ask(
            call.actor,
            call.action,
            call.payload,
            metadata=call.metadata,
            timeout=call.timeout,
            register_ref=request.register_ref,
        )
        return call.ok(result)
    except Exception as exc:  # every failure is an answer to the caller, never a crash
        return call.failed(system, exc)


async def invoke_async(
    system: ActorSystem, body: bytes, *, json_url: str = JSON_TYPE_URL
) -> Answer:
    """:func:`invoke_bytes` for an event loop: the actor runs on the caller's loop when idle."""
    call = _parse(system, body, json_url)
    if isinstance(call, Answer):
        return call
    request = call.request
    try:
        if call.delay is not None or getattr(request, "async"):
            return _tell(system, call)
        result = await system.ask_async(
            call.actor,
            call.action,
            call.payload,
            metadata=call.metadata,
            timeout=call.timeout,
            register_ref=request.register_ref,
        )
        return call.ok(result)
    except Exception as exc:  # every failure is an answer to the caller, never a crash
        return call.failed(system, exc)


# -- register and spawn ----------------------------------------------------------------------------


def _registration_error(message: str, http: int) -> Answer:
    response = protocol_pb2.RegistrationResponse(
        status=protocol_pb2.RequestStatus(status=protocol_pb2.ERROR, message=message),
        proxy_info=codec.PROXY_INFO,
    )
    return Answer(response.SerializeToString(), http)


def register_bytes(
    system: ActorSystem, body: bytes, hosts: HostFactory
) -> tuple[Answer, legacy.SdkProfile | None]:
    """RegistrationRequest bytes in, RegistrationResponse out, plus what we learnt of the SDK.

    Every actor is registered with ``hosts(profile)`` as its remote host, or none is: a bad
    definition refuses the whole request. Failures say why after upstream's "Error on create
    Actors" (which upstream sends alone).
    """
    try:
        request, profile = legacy.decode_registration(body)
    except ProtocolError as exc:
        return _registration_error(str(exc), 400), None
    except SpawnLabError as exc:
        return _registration_error(f"Error on create Actors: {exc}", 500), None
    try:
        definitions = _definitions(system, request, hosts(profile))
        for defn in definitions:
            system.register(defn)
    except SpawnLabError as exc:
        return _registration_error(f"Error on create Actors: {exc}", 500), profile
    response = protocol_pb2.RegistrationResponse(status=_ACCEPTED, proxy_info=codec.PROXY_INFO)
    return Answer(response.SerializeToString()), profile


def _definitions(
    system: ActorSystem, request: protocol_pb2.RegistrationRequest, host: object
) -> list[ActorDefinition]:
    if not request.HasField("service_info"):
        raise ProtocolError("RegistrationRequest.service_info is missing")
    actor_system = request.actor_system
    if actor_system.name != system.name:
        raise ActorNotFoundError(
            f"this proxy serves actor system {system.name!r}, not {actor_system.name!r} "
            f"(start it with --system {actor_system.name})"
        )
    if not actor_system.HasField("registry") or not actor_system.registry.actors:
        raise ProtocolError("RegistrationRequest.actor_system.registry has no actors")
    return [
        codec.definition_from_pb(actor, f"actor_system.registry.actors[{key!r}]", host=host)
        for key, actor in sorted(actor_system.registry.actors.items())
    ]


def _spawn_answer(status: int, message: str, http: int) -> Answer:
    response = protocol_pb2.SpawnResponse(
        status=protocol_pb2.RequestStatus(status=status, message=message)  # type: ignore[arg-type]
    )
    return Answer(response.SerializeToString(), http)


def spawn_bytes(system: ActorSystem, body: bytes, revision: int = 0) -> Answer:
    """SpawnRequest bytes in, SpawnResponse out: each ActorId becomes an instance of its parent,
    started from ``revision`` of its stored state (0: the latest) on first invocation (C29)."""
    try:
        request = protocol_pb2.SpawnRequest.FromString(body)
    except DecodeError as exc:
        message = f"body does not decode as spawn.SpawnRequest: {exc}"
        return _spawn_answer(protocol_pb2.ERROR, message, 400)
    try:
        for index, pb in enumerate(request.actors):
            path = f"SpawnRequest.actors[{index}]"
            actor_id = codec.actor_id_from_pb(pb, path)
            if not actor_id.parent:
                raise ProtocolError(f"{path}.parent is empty: name the UNNAMED actor to copy")
            if actor_id.system and actor_id.system != system.name:
                raise ActorNotFoundError(
                    f"{path}.system {actor_id.system!r} is not this proxy's system {system.name!r}"
                )
            system.spawn(actor_id.name, actor_id.parent, revision=revision)
    except SpawnLabError as exc:
        wire = status_for(exc)
        return _spawn_answer(wire.status, str(exc), wire.http)
    return _spawn_answer(protocol_pb2.OK, "Accepted", 200)


# -- state (extension) -----------------------------------------------------------------------------


def state_bytes(
    system: ActorSystem, system_name: str, actor: str, *, json_url: str = JSON_TYPE_URL
) -> Answer:
    """Our extension for upstream's broken GET-state route (D1): 200 with ``ActorState`` bytes,
    or 404 with a ``RequestStatus`` when the actor is unknown."""
    try:
        if system_name != system.name:
            raise ActorNotFoundError(f"Actor {actor} not found on ActorSystem {system_name}")
        state, tags, _revision = system.inspect(actor)
    except SpawnLabError as exc:
        wire = status_for(exc)
        status = protocol_pb2.RequestStatus(status=wire.status, message=str(exc))  # type: ignore[arg-type]
        return Answer(status.SerializeToString(), wire.http)
    pb = actor_pb2.ActorState(tags=tags)
    if state is not None:
        pb.state.CopyFrom(codec.pack_value(state, json_url))
    return Answer(pb.SerializeToString())
