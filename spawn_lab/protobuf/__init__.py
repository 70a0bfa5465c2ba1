"""Protobuf-first actors: compile a ``.proto`` in a cell, bind its services to Python handlers.

``compile_proto(text, "counter.proto")`` (or the ``%%proto`` cell magic, after
``%load_ext spawn_lab.protobuf``) gives a :class:`CompiledProto`; its messages work at once as
payloads and state, and ``proto.actor("Counter", handlers={...})`` is an actor to register.
Serve the actors with :func:`spawn_lab.transports.grpc.serve_grpc`.

Importing this package loads neither grpc nor grpc_tools; compiling loads grpc_tools.
"""

from spawn_lab.protobuf.binding import ServiceActor
from spawn_lab.protobuf.compiled import CompiledProto
from spawn_lab.protobuf.compiler import compile_proto, include_paths
from spawn_lab.protobuf.errors import ProtoCompileError, ProtoIssue
from spawn_lab.protobuf.magic import load_ipython_extension
from spawn_lab.protobuf.registry import ProtoIndex, ProtoRegistry, default_registry
from spawn_lab.protobuf.services import ActorService, HttpBinding, RpcMethod

__all__ = (
    "ActorService",
    "CompiledProto",
    "HttpBinding",
    "ProtoCompileError",
    "ProtoIndex",
    "ProtoIssue",
    "ProtoRegistry",
    "RpcMethod",
    "ServiceActor",
    "compile_proto",
    "default_registry",
    "include_paths",
    "load_ipython_extension",
)
