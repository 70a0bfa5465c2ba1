"""One table from error types to Spawn Status, HTTP and gRPC codes (spawn_lab.protocol.status)."""

from __future__ import annotations

import inspect

import pytest

from spawn_lab.core import errors
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.protocol.status import TABLE, GrpcCode, status_for


def test_status_table_covers_every_error_class() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.SpawnLabError)
    }
    listed = {cls for cls, _ in TABLE}
    unlisted = {
        cls for cls in classes - listed if not any(issubclass(cls, base) for base in listed - {cls})
    }
    assert unlisted == set()


@pytest.mark.parametrize(
    ("error", "status", "http", "grpc"),
    [
        (errors.ActorNotFoundError(), protocol_pb2.ACTOR_NOT_FOUND, 404, GrpcCode.NOT_FOUND),
        (errors.ActionNotFoundError(), protocol_pb2.ERROR, 500, GrpcCode.UNIMPLEMENTED),
        (errors.InvocationError("x"), protocol_pb2.ERROR, 500, GrpcCode.UNKNOWN),
        (errors.InvocationTimeoutError(), protocol_pb2.ERROR, 504, GrpcCode.DEADLINE_EXCEEDED),
        (errors.SystemStateError(), protocol_pb2.ERROR, 503, GrpcCode.UNAVAILABLE),
        (errors.RemoteProtocolError(), protocol_pb2.ERROR, 502, GrpcCode.UNAVAILABLE),
        (errors.ProtocolError(), protocol_pb2.ERROR, 400, GrpcCode.INVALID_ARGUMENT),
        (errors.ConflictError("x"), protocol_pb2.ERROR, 500, GrpcCode.UNAVAILABLE),
        (RuntimeError("bug"), protocol_pb2.ERROR, 500, GrpcCode.INTERNAL),
    ],
)
def test_status_for_uses_the_nearest_class(
    error: Exception, status: int, http: int, grpc: GrpcCode
) -> None:
    wire = status_for(error)
    assert (wire.status, wire.http, wire.grpc) == (status, http, grpc)


def test_status_names_are_spawns() -> None:
    assert status_for(errors.ActorNotFoundError()).status_name == "ACTOR_NOT_FOUND"
    assert status_for(errors.InvocationError("x")).status_name == "ERROR"
