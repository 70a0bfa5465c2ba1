"""Actor services over gRPC (grpc.aio) and over HTTP/JSON by ``google.api.http`` transcoding.

``serve_grpc(system)`` serves every actor service of the compiled protos;
``transcoding_routes(system)`` gives aiohttp routes for their HTTP rules. Names load lazily, so
``import spawn_lab.transports.grpc.transcode`` (for an HTTP server) does not import grpc.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spawn_lab.transports.grpc.dispatch import Code, Dispatcher, RpcFailure
    from spawn_lab.transports.grpc.server import GrpcServer, serve_grpc
    from spawn_lab.transports.grpc.transcode import (
        Transcoder,
        serve_transcoding,
        transcoding_app,
        transcoding_routes,
    )

__all__ = (
    "Code",
    "Dispatcher",
    "GrpcServer",
    "RpcFailure",
    "Transcoder",
    "serve_grpc",
    "serve_transcoding",
    "transcoding_app",
    "transcoding_routes",
)

_WHERE = {
    "Code": "dispatch",
    "Dispatcher": "dispatch",
    "RpcFailure": "dispatch",
    "GrpcServer": "server",
    "serve_grpc": "server",
    "Transcoder": "transcode",
    "serve_transcoding": "transcode",
    "transcoding_app": "transcode",
    "transcoding_routes": "transcode",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
