"""From an rpc call to an actor invocation and back (§9.1), shared by gRPC and HTTP transcoding.

It imports neither grpc nor aiohttp: the two front ends differ only in how bytes arrive and how
a :class:`RpcFailure` is spelled on the wire (a gRPC status, or an HTTP code with JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from google.protobuf import any_pb2, json_format
from google.protobuf.message import DecodeError, Message

from spawn_lab.core.errors import ActorNotFoundError, InvocationError, SpawnLabError
from spawn_lab.core.model import NOOP, Kind
from spawn_lab.protobuf.registry import ProtoRegistry, default_registry
from spawn_lab.protobuf.services import RpcMethod, describe_service
from spawn_lab.protocol.status import status_for

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = (
    "Code",
    "Dispatcher",
    "RpcFailure",
    "failure_of",
    "http_status",
)

#: Metadata a view reads (§8.5); the only keys passed from gRPC metadata into the invocation.
_VIEW_METADATA: Final = ("page", "page_size")


class Code(IntEnum):
    """gRPC status codes with their wire numbers (``grpc.StatusCode`` without importing grpc)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


#: google.rpc.Code to HTTP, as grpc-gateway and Google's APIs map them.
_HTTP: Final = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


def http_status(code: Code) -> int:
    return _HTTP[code]


class RpcFailure(Exception):
    """An rpc's failure: a gRPC ``code`` and the text the client sees."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"RpcFailure({self.code.name}, {self.message!r})"


def failure_of(exc: BaseException) -> RpcFailure:
    """The failure to answer for ``exc`` (spawn_lab's error table; anything else is INTERNAL).

    A handler's error carries its message only: the traceback stays in the kernel's trace, a
    remote client has no use for our file paths.
    """
    if isinstance(exc, RpcFailure):
        return exc
    message = str(exc.args[0]) if isinstance(exc, InvocationError) and exc.args else str(exc)
    if not isinstance(exc, SpawnLabError):
        message = f"{type(exc).__name__}: {message}"
    return RpcFailure(Code(int(status_for(exc).grpc)), message)


class Dispatcher:
    """Looks up rpcs in a registry and runs them against one actor system."""

    def __init__(
        self,
        system: ActorSystem,
        registry: ProtoRegistry | None = None,
        *,
        health: bool = True,
    ) -> None:
        self.system = system
        self.registry = default_registry() if registry is None else registry
        self.builtins: dict[str, RpcMethod] = _health_methods(system) if health else {}

    # -- lookup -----------------------------------------------------------------------------------

    def method(self, path: str) -> RpcMethod | None:
        """The rpc at ``/package.Service/Method``: an actor service's, or a built-in one."""
        return self.registry.index.methods.get(path) or self.builtins.get(path)

    def methods(self) -> list[RpcMethod]:
        """Every rpc served now (registry first, then built-ins)."""
        return [*self.registry.index.methods.values(), *self.builtins.values()]

    def service_names(self) -> list[str]:
        return sorted({*self.registry.index.services, *(m.service for m in self.builtins.values())})

    # -- requests and replies ---------------------------------------------------------------------

    @staticmethod
    def decode(rpc: RpcMethod, data: bytes) -> Message:
        """Parse request bytes as the rpc's input type (INVALID_ARGUMENT if they do not parse)."""
        try:
            return rpc.input.FromString(data)
        except DecodeError as exc:
            raise RpcFailure(
                Code.INVALID_ARGUMENT,
                f"request to {rpc.path} does not decode as {rpc.input.DESCRIPTOR.full_name}: {exc}",
            ) from None

    @staticmethod
    def reply_message(rpc: RpcMethod, reply: object) -> Message:
        """The rpc's output for what the actor answered (§9.1 response mapping).

        A message of the output type is the answer; ``noop`` (or None) is ``Empty``, i.e. an
        all-default output; an ``Any`` of the output type is opened; a dict goes through the
        protobuf JSON mapping. Anything else is UNKNOWN, naming what came back.
        """
        out = rpc.output
        if reply is NOOP or reply is None:
            return out()
        if isinstance(reply, Message):
            name = reply.DESCRIPTOR.full_name
            wanted = out.DESCRIPTOR.full_name
            if name == wanted:
                return reply
            if isinstance(reply, any_pb2.Any) and reply.type_url.rpartition("/")[2] == wanted:
                try:
                    return out.FromString(reply.value)
                except DecodeError as exc:
                    raise RpcFailure(Code.UNKNOWN, f"{rpc.path}: reply bytes: {exc}") from None
            shown = reply.type_url if isinstance(reply, any_pb2.Any) else name
            raise RpcFailure(
                Code.UNKNOWN,
                f"{rpc.path}: the actor answered {shown!r}, the rpc returns {wanted!r}",
            )
        if isinstance(reply, Mapping):
            try:
                return json_format.ParseDict(dict(reply), out(), descriptor_pool=rpc.pool)
            except json_format.ParseError as exc:
                raise RpcFailure(Code.UNKNOWN, f"{rpc.path}: the actor's reply: {exc}") from None
        raise RpcFailure(
            Code.UNKNOWN,
            f"{rpc.path}: the actor answered {type(reply).__name__} {_short(reply)}, "
            f"not a {out.DESCRIPTOR.full_name} message",
        )

    @classmethod
    def reply_bytes(cls, rpc: RpcMethod, reply: object) -> bytes:
        if type(reply) is rpc.output:
            return reply.SerializeToString()
        return cls.reply_message(rpc, reply).SerializeToString()

    # -- invoking ---------------------------------------------------------------------------------

    def target(self, rpc: RpcMethod, request: Message) -> tuple[str, str]:
        """``(actor, register_ref)`` for a call: the service's actor, or an UNNAMED instance."""
        try:
            kind = self.system.definition(rpc.actor).settings.kind
        except ActorNotFoundError:
            raise RpcFailure(
                Code.NOT_FOUND,
                f"actor {rpc.actor!r} (service {rpc.service}) is not registered in actor system "
                f"{self.system.name!r}",
            ) from None
        if kind is Kind.UNNAMED:
            if rpc.actor_id_field is None:
                raise RpcFailure(
                    Code.FAILED_PRECONDITION,
                    f"{rpc.actor!r} is UNNAMED, but {rpc.input.DESCRIPTOR.full_name} has no field "
                    "marked [(spawn.actors.actor_id) = true] to name the instance",
                )
            return _instance_name(getattr(request, rpc.actor_id_field)), rpc.actor
        if kind in (Kind.PROXY, Kind.UNKNOWN):
            raise RpcFailure(
                Code.FAILED_PRECONDITION,
                f"Failed to build request: actor {rpc.actor!r} is {kind.name}, which has no "
                "instance to invoke",
            )
        return rpc.actor, ""

    async def call(
        self,
        rpc: RpcMethod,
        request: Message,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> object:
        """One sync invocation (unary and bidi rpcs); the actor's reply, or RpcFailure.

        ``timeout`` is the caller's deadline (the system's default timeout when None).
        """
        if rpc.builtin is not None:
            return rpc.builtin(rpc.name)
        actor, register_ref = self.target(rpc, request)
        try:
            return await self.system.ask_async(
                actor,
                rpc.name,
                request,
                metadata=self._metadata(rpc, metadata),
                timeout=timeout,
                register_ref=register_ref,
            )
        except Exception as exc:
            raise failure_of(exc) from exc

    def tell(self, rpc: RpcMethod, request: Message) -> None:
        """One async invocation (server and client streaming, D13 as intended)."""
        if rpc.builtin is not None:
            return
        actor, register_ref = self.target(rpc, request)
        try:
            self.system.tell(actor, rpc.name, request, register_ref=register_ref)
        except Exception as exc:
            raise failure_of(exc) from exc

    @staticmethod
    def _metadata(rpc: RpcMethod, metadata: Mapping[str, str] | None) -> dict[str, str] | None:
        if rpc.view is None or not metadata:
            return None
        return {k: metadata[k] for k in _VIEW_METADATA if k in metadata} or None


def _instance_name(value: object) -> str:
    """Spawn names the instance by the field's value: strings as they are, others as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _health_methods(system: ActorSystem) -> dict[str, RpcMethod]:
    """The HealthCheckActor's rpcs (§9.4), answered without an actor in ``<system>-internal``.

    Upstream's dispatcher looks the actor up in a hard-coded system and may miss it (D14); ours
    answers from the server itself, so the probes work whatever the system is called.
    """
    from google.protobuf import message_factory

    from spawn_lab.protocol.spawn.actors import healthcheck_pb2

    descriptor = healthcheck_pb2.DESCRIPTOR.services_by_name["HealthCheckActor"]

    def resolve(name: str) -> type[Message]:
        return message_factory.GetMessageClass(descriptor.file.pool.FindMessageTypeByName(name))

    def answer(method: str) -> Message:
        details = "I'm alive!" if method == "Readiness" else "I'm still alive!"
        reply = healthcheck_pb2.HealthCheckReply()
        reply.status.status = "OK"
        reply.status.details = details
        reply.status.updated_at.seconds = int(system.clock.wall())
        return reply

    service = describe_service(descriptor, resolve)
    return {
        m.path: RpcMethod(
            service=m.service,
            actor=m.actor,
            name=m.name,
            input=m.input,
            output=m.output,
            http=m.http,
            pool=m.pool,
            builtin=answer,
        )
        for m in service.methods.values()
    }
