"""One table from spawn_lab's error types to Spawn ``Status``, HTTP status code and gRPC code.

Every transport answers failures through :func:`status_for`, so an error means the same thing on
the Spawn HTTP API, the user-function side and gRPC. Upstream Spawn answers *every* failure with
HTTP 500 and ``Status.ERROR``; SDKs read only the protobuf body, so the more precise HTTP codes
below break no client and tell a person with ``curl`` what went wrong (``docs/compat.md``).

gRPC codes are plain numbers (:class:`GrpcCode`) so that this module never imports ``grpc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from spawn_lab.core.errors import (
    ActionNotFoundError,
    ActorNotFoundError,
    InvocationError,
    InvocationTimeoutError,
    PayloadError,
    ProtocolError,
    RegistrationError,
    RemoteProtocolError,
    SpawnLabError,
    StoreError,
    SystemStateError,
)
from spawn_lab.protocol.spawn.actors import protocol_pb2

__all__ = ("TABLE", "GrpcCode", "WireStatus", "status_for")


class GrpcCode(IntEnum):
    """The gRPC status codes we use, with their wire numbers (``grpc.StatusCode``)."""

    OK = 0
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


@dataclass(frozen=True, slots=True)
class WireStatus:
    """How one kind of failure is answered: Spawn ``Status`` value, HTTP code and gRPC code."""

    status: int
    http: int
    grpc: GrpcCode

    @property
    def status_name(self) -> str:
        return protocol_pb2.Status.Name(self.status)


_ERROR: Final = protocol_pb2.ERROR
_NOT_FOUND: Final = protocol_pb2.ACTOR_NOT_FOUND

#: Most specific first; :func:`status_for` walks the exception's MRO, so order only documents.
TABLE: Final[tuple[tuple[type[BaseException], WireStatus], ...]] = (
    (ActorNotFoundError, WireStatus(_NOT_FOUND, 404, GrpcCode.NOT_FOUND)),
    (ActionNotFoundError, WireStatus(_ERROR, 500, GrpcCode.UNIMPLEMENTED)),
    (InvocationTimeoutError, WireStatus(_ERROR, 504, GrpcCode.DEADLINE_EXCEEDED)),
    (InvocationError, WireStatus(_ERROR, 500, GrpcCode.UNKNOWN)),
    (RegistrationError, WireStatus(_ERROR, 400, GrpcCode.INVALID_ARGUMENT)),
    (SystemStateError, WireStatus(_ERROR, 503, GrpcCode.UNAVAILABLE)),
    (PayloadError, WireStatus(_ERROR, 400, GrpcCode.INVALID_ARGUMENT)),
    (RemoteProtocolError, WireStatus(_ERROR, 502, GrpcCode.UNAVAILABLE)),
    (ProtocolError, WireStatus(_ERROR, 400, GrpcCode.INVALID_ARGUMENT)),
    (StoreError, WireStatus(_ERROR, 500, GrpcCode.UNAVAILABLE)),
    (SpawnLabError, WireStatus(_ERROR, 500, GrpcCode.UNKNOWN)),
)

_BY_TYPE: Final[dict[type[BaseException], WireStatus]] = dict(TABLE)
#: Anything that is not a SpawnLabError is a bug on our side.
_INTERNAL: Final = WireStatus(_ERROR, 500, GrpcCode.INTERNAL)


def status_for(exc: BaseException) -> WireStatus:
    """The answer for ``exc``: the entry of its nearest class in :data:`TABLE`."""
    for cls in type(exc).__mro__:
        found = _BY_TYPE.get(cls)
        if found is not None:
            return found
    return _INTERNAL
