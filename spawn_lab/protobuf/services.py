"""What a compiled proto service means to Spawn: actor options, rpcs as actions, HTTP rules, views.

Everything here is read once per compile from the descriptors, so the servers that use it do
a dict lookup per call instead of walking options. §9.1 (dispatch), §9.2 (``ActorOpts``),
§9.3 (``google.api.http``) and §8.5 (views) of the spec are the sources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from spawn_lab.core.model import Kind, ProjectionSubject, ViewSpec
from spawn_lab.protocol.spawn.actors import extensions_pb2

__all__ = (
    "ActorService",
    "HttpBinding",
    "RpcMethod",
    "actor_kwargs",
    "actor_name_of",
    "describe_service",
)

_ACTOR: Any = extensions_pb2.actor
_VIEW: Any = extensions_pb2.view
_ACTOR_ID: Any = extensions_pb2.actor_id
_HTTP: Any = annotations_pb2.http
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One ``google.api.http`` pattern: ``verb`` and path ``template``, and where the body goes."""

    verb: str
    template: str
    body: str = ""
    response_body: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class RpcMethod:
    """One rpc of an actor service: an action named like the method (§9.1).

    ``builtin`` answers the call without any actor (the HealthCheckActor, §9.4).
    ``actor_id_field`` is the input field marked ``(spawn.actors.actor_id)``: for UNNAMED
    actors its value names the instance.
    """

    service: str
    actor: str
    name: str
    input: type[Message]
    output: type[Message]
    client_streaming: bool = False
    server_streaming: bool = False
    http: tuple[HttpBinding, ...] = ()
    view: ViewSpec | None = None
    actor_id_field: str | None = None
    pool: Any = None
    builtin: Callable[[str], Message] | None = None

    def __repr__(self) -> str:
        types = f"{self.input.DESCRIPTOR.full_name} -> {self.output.DESCRIPTOR.full_name}"
        return f"<RpcMethod {self.path} {self.streaming} {types}>"

    @property
    def path(self) -> str:
        """The gRPC method path, ``/package.Service/Method``."""
        return f"/{self.service}/{self.name}"

    @property
    def streaming(self) -> str:
        """``unary``, ``server``, ``client`` or ``bidi``."""
        if self.client_streaming:
            return "bidi" if self.server_streaming else "client"
        return "server" if self.server_streaming else "unary"


@dataclass(frozen=True, slots=True, eq=False)
class ActorService:
    """A proto service; ``options`` is its ``(spawn.actors.actor)`` option, None if it has none."""

    full_name: str
    name: str
    actor: str
    file: str
    options: extensions_pb2.ActorOpts | None
    methods: Mapping[str, RpcMethod] = field(default_factory=dict)

    def __repr__(self) -> str:
        kind = self.kind.name if self.is_actor else "not an actor"
        return f"<ActorService {self.full_name} ({kind}) rpcs={list(self.methods)}>"

    @property
    def is_actor(self) -> bool:
        """Only services with the actor option are served and bound (§9.1)."""
        return self.options is not None

    @property
    def kind(self) -> Kind:
        return _kind(self.options)


def actor_name_of(service_name: str) -> str:
    """The actor a service dispatches to: Elixir's ``Macro.camelize`` of the service name."""
    return "".join(part[:1].upper() + part[1:] for part in service_name.split("_"))


def describe_service(
    service: ServiceDescriptor, resolve: Callable[[str], type[Message]]
) -> ActorService:
    """Read ``service``'s options and rpcs; ``resolve`` maps a full message name to its class."""
    options = service.GetOptions()
    opts = options.Extensions[_ACTOR] if options.HasExtension(_ACTOR) else None
    actor = actor_name_of(service.name)
    methods = {
        m.name: _describe_method(m, service.full_name, actor, resolve) for m in service.methods
    }
    return ActorService(service.full_name, service.name, actor, service.file.name, opts, methods)


def _describe_method(
    method: MethodDescriptor,
    service: str,
    actor: str,
    resolve: Callable[[str], type[Message]],
) -> RpcMethod:
    options = method.GetOptions()
    http = _bindings(options.Extensions[_HTTP]) if options.HasExtension(_HTTP) else ()
    view = None
    if options.HasExtension(_VIEW):
        spec = options.Extensions[_VIEW]
        view = ViewSpec(
            query=spec.query,
            map_to=spec.map_to,
            page_size=spec.page_size or 10,
            input_type=method.input_type.full_name,
            output_type=method.output_type.full_name,
        )
    return RpcMethod(
        service=service,
        actor=actor,
        name=method.name,
        input=resolve(method.input_type.full_name),
        output=resolve(method.output_type.full_name),
        client_streaming=method.client_streaming,
        server_streaming=method.server_streaming,
        http=http,
        view=view,
        actor_id_field=_actor_id_field(method.input_type.fields),
        pool=method.containing_service.file.pool,
    )


def _actor_id_field(fields: Sequence[FieldDescriptor]) -> str | None:
    for f in fields:
        options = f.GetOptions()
        if options.HasExtension(_ACTOR_ID) and options.Extensions[_ACTOR_ID]:
            return f.name
    return None


def _bindings(rule: http_pb2.HttpRule) -> tuple[HttpBinding, ...]:
    """The rule's own pattern, then its ``additional_bindings`` (which may not nest further)."""
    out: list[HttpBinding] = []
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        out.append(
            HttpBinding(pattern.upper(), getattr(rule, pattern), rule.body, rule.response_body)
        )
    elif pattern == "custom":
        out.append(
            HttpBinding(rule.custom.kind.upper(), rule.custom.path, rule.body, rule.response_body)
        )
    for extra in rule.additional_bindings:
        out.extend(_bindings(extra))
    return tuple(out)


def _kind(opts: extensions_pb2.ActorOpts | None) -> Kind:
    raw = int(opts.kind) if opts is not None else 0
    return Kind(raw) if raw else Kind.NAMED


def actor_kwargs(opts: extensions_pb2.ActorOpts) -> dict[str, Any]:
    """``Actor(...)`` settings from an ``ActorOpts`` (§9.2).

    Proto3 cannot tell an absent number from zero, so a zero timeout keeps spawn_lab's default
    and an absent kind means NAMED. ``state_type`` loses its leading dot: the runtime and type
    URLs use full names without it.
    """
    retention: int | None = 86_400_000
    strategy = opts.events_retention_strategy
    which = strategy.WhichOneof("strategy") if opts.HasField("events_retention_strategy") else None
    if which == "infinite" and strategy.infinite:
        retention = None
    elif which == "duration_ms":
        retention = int(strategy.duration_ms)
    kwargs: dict[str, Any] = {
        "kind": _kind(opts),
        "stateful": bool(opts.stateful),
        "state_type": opts.state_type.lstrip("."),
        "sourceable": bool(opts.sourceable),
        "strict_events_ordering": bool(opts.strict_events_ordering),
        "events_retention_ms": retention,
        "subjects": tuple(
            ProjectionSubject(
                s.actor,
                s.source_action,
                s.action,
                s.start_time.ToMilliseconds() if s.HasField("start_time") else 0,
            )
            for s in opts.subjects
        ),
    }
    if opts.deactivate_timeout > 0:
        kwargs["deactivate_timeout_ms"] = int(opts.deactivate_timeout)
    if opts.snapshot_interval > 0:
        kwargs["snapshot_interval_ms"] = int(opts.snapshot_interval)
    return kwargs
