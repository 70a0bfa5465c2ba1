"""gRPC server reflection (v1alpha and v1) over every pool the served services live in.

grpcio-reflection looks symbols up in one descriptor pool and lists a fixed set of services.
Ours live in one pool per compiled cell plus the default pool, and change when a cell is
re-run, so the servicer gets a pool-like object that searches them newest first, and a list of
services read at each request. v1 and v1alpha have the same messages on the wire, so one
servicer answers both names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from spawn_lab.protobuf.registry import ProtoRegistry

__all__ = ("REFLECTION_SERVICES", "add_reflection")

_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_SERVICES = (_V1, _V1ALPHA)


class _Pools:
    """The lookups reflection needs (DescriptorPool's method names), tried in each pool: the
    registry's newest first, then the default pool. Extensions are looked up in the pool of the
    message they extend."""

    def __init__(self, registry: ProtoRegistry) -> None:
        self._registry = registry

    def _pools(self) -> tuple[Any, ...]:
        return (*self._registry.index.pools, descriptor_pool.Default())

    def _first(self, lookup: str, name: str) -> Any:
        for pool in self._pools():
            try:
                return getattr(pool, lookup)(name)
            except KeyError:
                continue
        raise KeyError(name)

    def FindFileByName(self, name: str) -> FileDescriptor:
        return self._first("FindFileByName", name)  # type: ignore[no-any-return]

    def FindFileContainingSymbol(self, name: str) -> FileDescriptor:
        return self._first("FindFileContainingSymbol", name)  # type: ignore[no-any-return]

    def FindMessageTypeByName(self, name: str) -> Descriptor:
        return self._first("FindMessageTypeByName", name)  # type: ignore[no-any-return]

    def FindExtensionByNumber(self, message: Descriptor, number: int) -> FieldDescriptor:
        return message.file.pool.FindExtensionByNumber(message, number)

    def FindAllExtensions(self, message: Descriptor) -> list[FieldDescriptor]:
        return list(message.file.pool.FindAllExtensions(message))


class _Servicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer with a service list read at each request.

    ``_list_services`` is the one method of its base class it replaces (the base lists the
    names given to its constructor, once).
    """

    def __init__(self, names: Callable[[], list[str]], registry: ProtoRegistry) -> None:
        super().__init__((), pool=_Pools(registry))
        self._names = names

    def _list_services(self, request: Any) -> Any:
        return reflection_pb2.ServerReflectionResponse(
            list_services_response=reflection_pb2.ListServiceResponse(
                service=[reflection_pb2.ServiceResponse(name=n) for n in self._names()]
            ),
            original_request=request,
        )


def add_reflection(
    server: grpc.aio.Server, names: Callable[[], list[str]], registry: ProtoRegistry
) -> None:
    """Serve reflection v1alpha and v1 on ``server``; ``names()`` lists the services to show."""

    def all_names() -> list[str]:
        return sorted({*names(), *REFLECTION_SERVICES})

    servicer = _Servicer(all_names, registry)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_V1, {"ServerReflectionInfo": handler}),)
    )
