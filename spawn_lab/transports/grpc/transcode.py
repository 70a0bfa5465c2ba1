"""HTTP/JSON transcoding of actor rpcs by their ``google.api.http`` rules (§9.3), on aiohttp.

``transcoding_routes(system)`` gives aiohttp routes to mount on an HTTP server (for example the
Spawn proxy's); ``serve_transcoding(system)`` runs them on a server of their own. A request
becomes the rpc's input message as grpc-gateway builds it: the JSON body (``body: "*"`` or one
field), then query parameters (unless the body took everything), then path parameters. JSON uses
protobuf's JSON mapping. Failures answer ``{"code", "message", "details"}`` (google.rpc.Status as
JSON) with the HTTP status grpc-gateway uses for the gRPC code; bad JSON is 400 naming the field.

Nothing here imports grpc.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from spawn_lab.core.errors import SpawnLabError
from spawn_lab.protobuf.registry import ProtoRegistry
from spawn_lab.protobuf.services import RpcMethod
from spawn_lab.transports.grpc.dispatch import (
    Code,
    Dispatcher,
    RpcFailure,
    failure_of,
    http_status,
)
from spawn_lab.transports.grpc.templates import PathTemplate, parse_template

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem
    from spawn_lab.transports.http.runner import HttpServer

__all__ = (
    "Route",
    "Transcoder",
    "serve_transcoding",
    "transcoding_app",
    "transcoding_routes",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of one rpc."""

    verb: str
    path: PathTemplate
    body: str
    response_body: str
    rpc: RpcMethod


class Transcoder:
    """The HTTP face of a :class:`Dispatcher`; its route table follows the registry's version."""

    def __init__(
        self,
        system: ActorSystem,
        registry: ProtoRegistry | None = None,
        *,
        health: bool = False,
    ) -> None:
        self.dispatcher = Dispatcher(system, registry, health=health)
        self._routes: tuple[Route, ...] = ()
        self._version = -1

    def routes(self) -> tuple[Route, ...]:
        """Every HTTP binding of every served rpc (rebuilt when the registry changes)."""
        version = self.dispatcher.registry.index.version
        if version != self._version:
            self._routes = tuple(_routes_of(self.dispatcher.methods()))
            self._version = version
        return self._routes

    def match(self, verb: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route for ``verb`` whose template matches, with its path parameters."""
        for route in self.routes():
            if route.verb == verb:
                params = route.path.match(raw_path)
                if params is not None:
                    return route, params
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse | None:
        """Answer ``request`` if a rule matches it; None lets the caller answer (404 and so on)."""
        found = self.match(request.method, request.rel_url.raw_path)
        if found is None:
            return None
        return await self.serve(found[0], found[1], request)

    def route_defs(self) -> list[web.RouteDef]:
        """aiohttp routes for the rules known now (one per distinct verb and path)."""
        defs: list[web.RouteDef] = []
        seen: set[tuple[str, str]] = set()
        for route in self.routes():
            key = (route.verb, route.path.aiohttp_path)
            if key not in seen:
                seen.add(key)
                handler = functools.partial(self._serve_fixed, route)
                defs.append(web.route(route.verb, route.path.aiohttp_path, handler))
        return defs

    async def _serve_fixed(self, route: Route, request: web.Request) -> web.StreamResponse:
        params = route.path.match(request.rel_url.raw_path) or {}
        return await self.serve(route, params, request)

    async def serve(
        self, route: Route, params: dict[str, str], request: web.Request
    ) -> web.StreamResponse:
        """Build the input message, run the rpc, answer its output as JSON."""
        rpc = route.rpc
        try:
            message = await _request_message(route, params, request)
            if rpc.streaming in ("server", "client"):
                self.dispatcher.tell(rpc, message)
                output: Message = rpc.output()
            else:
                metadata = {k.lower(): v for k, v in request.headers.items()} if rpc.view else None
                reply = await self.dispatcher.call(rpc, message, metadata)
                output = self.dispatcher.reply_message(rpc, reply)
            return web.json_response(_output_json(route, output))
        except Exception as exc:  # every failure is an answer; the server keeps serving
            return error_response(failure_of(exc))


def error_response(failure: RpcFailure) -> web.Response:
    """google.rpc.Status as JSON, with the HTTP status grpc-gateway gives the code."""
    body = {"code": int(failure.code), "message": failure.message, "details": []}
    return web.json_response(body, status=http_status(failure.code))


def transcoding_routes(
    system: ActorSystem, registry: ProtoRegistry | None = None, *, health: bool = False
) -> list[web.RouteDef]:
    """aiohttp routes for the HTTP rules of the actor services compiled so far.

    Mount them before any catch-all route. Rules compiled later need a new mount; for rules
    that follow the registry live, call :meth:`Transcoder.handle` from the catch-all instead.
    ``health`` adds the HealthCheckActor's ``GET /health/liveness`` and ``/health/readiness``,
    which upstream serves on the gRPC port, not beside the proxy's own ``/health/*``.
    """
    return Transcoder(system, registry, health=health).route_defs()


def transcoding_app(
    system: ActorSystem, registry: ProtoRegistry | None = None, *, health: bool = True
) -> web.Application:
    """An application that serves every rule, following the registry as cells are re-run."""
    transcoder = Transcoder(system, registry, health=health)

    async def any_route(request: web.Request) -> web.StreamResponse:
        answer = await transcoder.handle(request)
        if answer is not None:
            return answer
        raw = request.rel_url.raw_path
        allowed = sorted({r.verb for r in transcoder.routes() if r.path.match(raw) is not None})
        if allowed:
            failure = RpcFailure(
                Code.UNIMPLEMENTED, f"{request.method} {raw}: this path takes {', '.join(allowed)}"
            )
            response = error_response(failure)
            response.set_status(405)
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(RpcFailure(Code.NOT_FOUND, f"no HTTP rule matches {raw!r}"))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_route)
    return app


def serve_transcoding(
    system: ActorSystem,
    registry: ProtoRegistry | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    health: bool = True,
) -> HttpServer:
    """Serve :func:`transcoding_app` on its own loop thread (``port=0``: see ``.url``)."""
    from spawn_lab.transports.http.runner import HttpServer

    return HttpServer(
        lambda state: transcoding_app(system, registry, health=health),
        host,
        port,
        name=f"spawn-lab-transcoding-{system.name}",
    )


# -- routes ----------------------------------------------------------------------------------------


def _routes_of(methods: Iterable[RpcMethod]) -> Iterable[Route]:
    for rpc in methods:
        for binding in rpc.http:
            try:
                template = parse_template(binding.template)
            except SpawnLabError:
                continue  # a bad rule is skipped; the rpc stays callable over gRPC
            yield Route(binding.verb, template, binding.body, binding.response_body, rpc)


# -- requests --------------------------------------------------------------------------------------


async def _request_message(route: Route, params: dict[str, str], request: web.Request) -> Message:
    """Body, then query parameters (unless ``body: "*"``), then path parameters."""
    rpc = route.rpc
    message = rpc.input()
    if route.body:
        raw = await request.read()
        if raw.strip():
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise RpcFailure(
                    Code.INVALID_ARGUMENT, f"request body is not JSON: {exc}"
                ) from None
            if route.body == "*":
                if not isinstance(value, dict):
                    raise RpcFailure(
                        Code.INVALID_ARGUMENT,
                        f"request body must be a JSON object ({rpc.input.DESCRIPTOR.full_name}), "
                        f"got {type(value).__name__}",
                    )
                _parse(value, message, rpc, "request body")
            else:
                _parse({route.body: value}, message, rpc, "request body")
    if route.body != "*":
        query = request.rel_url.query
        for key in dict.fromkeys(query.keys()):
            _set(message, key, query.getall(key), rpc, "query parameter")
    for path, value in params.items():
        _set(message, path, [value], rpc, "path parameter")
    return message


def _parse(value: dict[str, Any], message: Message, rpc: RpcMethod, what: str) -> None:
    try:
        json_format.ParseDict(value, message, descriptor_pool=rpc.pool)
    except json_format.ParseError as exc:
        raise RpcFailure(Code.INVALID_ARGUMENT, f"{what}: {exc}") from None


def _set(message: Message, path: str, values: list[str], rpc: RpcMethod, what: str) -> None:
    """Set field ``path`` (``a.b.c``) of ``message`` from text, with JSON-mapping conversions."""
    target = message
    parts = path.split(".")
    for part in parts[:-1]:
        field = _field(target, part, path, what)
        if field.message_type is None or field.is_repeated:
            raise RpcFailure(
                Code.INVALID_ARGUMENT, f"{what} {path!r}: {part!r} is not a singular message field"
            )
        target = getattr(target, field.name)
    field = _field(target, parts[-1], path, what)
    if field.message_type is not None and not field.message_type.full_name.startswith(
        "google.protobuf."
    ):
        raise RpcFailure(
            Code.INVALID_ARGUMENT, f"{what} {path!r} is a message field; send it in the body"
        )
    repeated = field.is_repeated
    if not repeated and len(values) > 1:
        raise RpcFailure(Code.INVALID_ARGUMENT, f"{what} {path!r} given {len(values)} times")
    converted = [_scalar(field, v, path, what) for v in values]
    single = type(target)()
    _parse({field.name: converted if repeated else converted[0]}, single, rpc, f"{what} {path!r}")
    if not repeated:
        target.ClearField(field.name)
    target.MergeFrom(single)


def _field(message: Message, name: str, path: str, what: str) -> FieldDescriptor:
    descriptor = message.DESCRIPTOR
    field = descriptor.fields_by_name.get(name)
    if field is None:
        field = next((f for f in descriptor.fields if f.json_name == name), None)
    if field is None:
        raise RpcFailure(
            Code.INVALID_ARGUMENT,
            f"{what} {path!r}: {descriptor.full_name} has no field {name!r}",
        )
    return cast(FieldDescriptor, field)


def _scalar(field: FieldDescriptor, text: str, path: str, what: str) -> Any:
    """Text to what the JSON mapping expects: bools and enum numbers need converting."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if text in ("true", "false"):
            return text == "true"
        raise RpcFailure(
            Code.INVALID_ARGUMENT, f"{what} {path!r}: expected true or false, got {text!r}"
        )
    if field.type == FieldDescriptor.TYPE_ENUM and text.lstrip("-").isdigit():
        return int(text)
    return text


# -- replies ---------------------------------------------------------------------------------------


def _output_json(route: Route, output: Message) -> Any:
    document = json_format.MessageToDict(output, descriptor_pool=route.rpc.pool)
    if not route.response_body:
        return document
    field = _field(output, route.response_body, route.response_body, "response_body")
    return document.get(field.json_name)
