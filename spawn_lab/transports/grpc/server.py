"""``serve_grpc``: every actor service of the compiled protos, served on grpc.aio (§9.1, §9.4).

The server runs on an event loop of its own thread, not on the kernel's loop (which stalls
whenever a cell blocks) and not on the system's driver loop: ``ask_async`` runs an idle actor's
plain-function handler in the caller's task, so on the driver loop a slow handler called over
gRPC would hold up every timer and coroutine actor of the system. On its own loop it holds up
only other gRPC calls, and a call still costs no thread hop.

Methods are looked up at each call (a dict lookup, cached per registry version), so a cell
that is compiled again, or an actor registered after the server started, is served at once.
No generated stubs: requests and replies are (de)serialized from the registry's classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
from grpc import aio

from spawn_lab.protobuf.registry import ProtoRegistry
from spawn_lab.protobuf.services import RpcMethod
from spawn_lab.transports.grpc.dispatch import Dispatcher, failure_of
from spawn_lab.transports.grpc.reflection import add_reflection
from spawn_lab.transports.loop import LoopThread

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("GrpcServer", "serve_grpc")

_STATUS: Final = {code.value[0]: code for code in grpc.StatusCode}
#: The one message a streaming rpc answers with: ``google.protobuf.Empty`` (D13 as intended).
_ACK: Final = b""


def serve_grpc(
    system: ActorSystem,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    registry: ProtoRegistry | None = None,
    reflection: bool = True,
    health: bool = True,
) -> GrpcServer:
    """Serve ``system``'s actor services on ``host:port`` (0 picks a free port, see ``.port``)."""
    return GrpcServer(
        system, host=host, port=port, registry=registry, reflection=reflection, health=health
    )


class GrpcServer:
    """A running gRPC server on its own loop thread; ``close()`` stops it (idempotent)."""

    def __init__(
        self,
        system: ActorSystem,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: ProtoRegistry | None = None,
        reflection: bool = True,
        health: bool = True,
    ) -> None:
        self.dispatcher = Dispatcher(system, registry, health=health)
        self.host = host
        self._reflection = reflection
        self._thread = LoopThread(f"spawn-lab-grpc-{system.name}")
        self._server: aio.Server | None = None
        self._closed = False
        try:
            self.port = self._thread.run(self._start(port), 30)
        except BaseException:
            self._thread.stop()
            raise

    async def _start(self, port: int) -> int:
        server = aio.server()
        server.add_generic_rpc_handlers((_Handlers(self.dispatcher),))
        if self._reflection:
            add_reflection(server, self.dispatcher.service_names, self.dispatcher.registry)
        bound = server.add_insecure_port(f"{self.host}:{port}")
        if not bound:
            raise OSError(f"gRPC server could not bind {self.host}:{port}")
        await server.start()
        self._server = server
        return int(bound)

    @property
    def address(self) -> str:
        """``host:port``, what ``grpc.insecure_channel`` takes."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def loop(self) -> LoopThread:
        return self._thread

    def close(self, grace: float = 1.0) -> None:
        """Stop accepting calls, give running ones ``grace`` seconds, then stop the loop."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._server is not None and self._thread.running:
                self._thread.run(self._server.stop(grace), grace + 5)
        finally:
            self._thread.stop()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> GrpcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        services = self.dispatcher.service_names()
        state = "closed" if self._closed else "serving"
        return f"<GrpcServer {self.address} {state} services={services}>"

    def _repr_html_(self) -> str:
        import html

        items = "".join(f"<li>{html.escape(m.path)}</li>" for m in self.dispatcher.methods())
        state = "closed" if self._closed else "serving"
        return f"<div>gRPC on <code>{self.address}</code> ({state})<ul>{items}</ul></div>"


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Builds a method handler per rpc on first use; rebuilt when the registry changes."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._cache: dict[str, grpc.RpcMethodHandler] = {}
        self._version = -1

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        path: str = handler_call_details.method
        version = self._dispatcher.registry.index.version
        if version != self._version:
            self._cache = {}
            self._version = version
        handler = self._cache.get(path)
        if handler is None:
            rpc = self._dispatcher.method(path)
            if rpc is None:
                return None  # grpc answers UNIMPLEMENTED
            handler = self._cache[path] = _method_handler(self._dispatcher, rpc)
        return handler


def _method_handler(dispatcher: Dispatcher, rpc: RpcMethod) -> grpc.RpcMethodHandler:
    """A handler on raw bytes, so decoding errors are ours to answer (INVALID_ARGUMENT)."""
    kind = rpc.streaming
    if kind == "unary":
        return grpc.unary_unary_rpc_method_handler(_unary(dispatcher, rpc))
    if kind == "server":
        return grpc.unary_stream_rpc_method_handler(_server_stream(dispatcher, rpc))
    if kind == "client":
        return grpc.stream_unary_rpc_method_handler(_client_stream(dispatcher, rpc))
    return grpc.stream_stream_rpc_method_handler(_bidi(dispatcher, rpc))


async def _abort(context: aio.ServicerContext[Any, Any], exc: Exception) -> None:
    failure = failure_of(exc)
    await context.abort(_STATUS[int(failure.code)], failure.message)


def _metadata(context: aio.ServicerContext[Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


def _unary(dispatcher: Dispatcher, rpc: RpcMethod) -> Callable[..., Awaitable[bytes]]:
    """One sync invocation; its reply is the rpc's output."""
    view = rpc.view is not None

    async def unary(data: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        try:
            request = dispatcher.decode(rpc, data)
            metadata = _metadata(context) if view else None
            reply = await dispatcher.call(rpc, request, metadata, context.time_remaining())
            return dispatcher.reply_bytes(rpc, reply)
        except Exception as exc:  # every failure becomes a status; the server keeps serving
            await _abort(context, exc)
            raise  # not reached: abort raises

    return unary


def _server_stream(dispatcher: Dispatcher, rpc: RpcMethod) -> Callable[..., AsyncIterator[bytes]]:
    """One async invocation, then one Empty on the stream (§9.1 with D13 fixed)."""

    async def server_stream(
        data: bytes, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        try:
            dispatcher.tell(rpc, dispatcher.decode(rpc, data))
        except Exception as exc:
            await _abort(context, exc)
        yield _ACK

    return server_stream


def _client_stream(dispatcher: Dispatcher, rpc: RpcMethod) -> Callable[..., Awaitable[bytes]]:
    """One async invocation per incoming message; Empty when the client ends (D13 fixed)."""

    async def client_stream(
        requests: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        try:
            async for data in requests:
                dispatcher.tell(rpc, dispatcher.decode(rpc, data))
        except Exception as exc:
            await _abort(context, exc)
        return _ACK

    return client_stream


def _bidi(dispatcher: Dispatcher, rpc: RpcMethod) -> Callable[..., AsyncIterator[bytes]]:
    """One sync invocation per incoming message, each reply sent back in order."""

    async def bidi(
        requests: AsyncIterator[bytes], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        try:
            async for data in requests:
                reply = await dispatcher.call(rpc, dispatcher.decode(rpc, data))
                yield dispatcher.reply_bytes(rpc, reply)
        except Exception as exc:
            await _abort(context, exc)

    return bidi
