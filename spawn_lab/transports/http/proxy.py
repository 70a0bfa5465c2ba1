"""The Spawn proxy HTTP API (``spawn-spec.md`` §1.2) for a spawn_lab system.

Routes: ``POST /api/v1/system`` (register), ``POST /api/v1/system/{system}/actors/spawn``
(``?revision=N``), ``POST /api/v1/system/{system}/actors/{actor}/invoke``, our GET-state extension
``GET /api/v1/system/{system}/actors/{actor}``, ``/health``, ``/health/liveness``,
``/health/readiness`` and ``/metrics``; anything else is 404 ``Not found!``.

Protocol routes answer every refusal with their own protobuf response type and ``Status.ERROR``
(415 content type, 413 size, 400 undecodable, 401 token), because SDKs read only the body.
Actors that an SDK registers run on its user function through a
:class:`~spawn_lab.transports.http.client.RemoteHost`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from aiohttp import web

from spawn_lab.protocol import codec, legacy
from spawn_lab.protocol.payloads import JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.transports import wire
from spawn_lab.transports.http.client import RemoteHost, UserFunctionClient
from spawn_lab.transports.http.metrics import HttpMetrics
from spawn_lab.transports.http.runner import HttpServer, ServerState

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("DEFAULT_MAX_BODY", "PROXY", "Proxy", "serve_http", "user_function_address")

#: Plug's default read length, which upstream never changes (§1.2).
DEFAULT_MAX_BODY: Final = 8_000_000
OCTET: Final = "application/octet-stream"
_PROTOBUF: Final = frozenset((OCTET, "application/protobuf", "application/x-protobuf"))
_REGISTER, _SPAWN, _INVOKE, _STATE = "register", "spawn", "invoke", "state"
_JSON_PREFIX: Final = {
    _REGISTER: "Error on create Actors",
    _SPAWN: "Error on spawn Actors",
    _INVOKE: "Error on invoke Actor",
    _STATE: "Error on get Actor state",
}
#: Routes a token never guards: probes must work without secrets.
_OPEN: Final = frozenset(("health", "liveness", "readiness"))
_SHUTTING_DOWN: Final = "The ActorHost is shutting down and can no longer receive invocations"


def user_function_address(flag: str | None = None) -> str:
    """Where the user function listens, as Spawn's sidecar mode finds it: the flag
    (``HOST:PORT`` or a URL), else ``USER_FUNCTION_HOST``/``USER_FUNCTION_PORT``, else
    127.0.0.1:8090. Returns a base URL."""
    if flag:
        return flag.rstrip("/") if "://" in flag else f"http://{flag}"
    host = os.environ.get("USER_FUNCTION_HOST") or "127.0.0.1"
    port = os.environ.get("USER_FUNCTION_PORT") or "8090"
    return f"http://{host}:{port}"


def _error_body(route: str | None, status: int, message: str) -> bytes:
    """A refusal in the route's own response message (or plain text off the protocol routes)."""
    request_status = protocol_pb2.RequestStatus(status=status, message=message)  # type: ignore[arg-type]
    if route == _INVOKE:
        return protocol_pb2.InvocationResponse(status=request_status).SerializeToString()
    if route == _REGISTER:
        return protocol_pb2.RegistrationResponse(
            status=request_status, proxy_info=codec.PROXY_INFO
        ).SerializeToString()
    if route == _SPAWN:
        return protocol_pb2.SpawnResponse(status=request_status).SerializeToString()
    if route == _STATE:
        return request_status.SerializeToString()
    return message.encode()


class Proxy:
    """The handlers of one proxy server; ``app()`` builds the aiohttp application."""

    def __init__(
        self,
        system: ActorSystem,
        client: UserFunctionClient,
        state: ServerState,
        *,
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.system = system
        self.client = client
        self.state = state
        self.max_body = max_body
        self.metrics = HttpMetrics()
        #: JSON replies follow the dialect of the SDK that registered last (rule L3).
        self.json_url = JSON_TYPE_URL
        self.profiles: dict[str, legacy.SdkProfile] = {}
        self._bearer = f"Bearer {token}".encode() if token else None
        from spawn_lab.transports.grpc.transcode import Transcoder

        #: google.api.http routes of actor services compiled in this process (spec §9.3); it
        #: follows re-run %%proto cells, and the token check applies to it like to every route
        self.transcoder = Transcoder(system)

    def app(self) -> web.Application:
        middlewares = [self._auth] if self._bearer is not None else []
        app = web.Application(client_max_size=self.max_body + 1, middlewares=middlewares)
        add = app.router.add_route
        add("POST", "/api/v1/system", self.register, name=_REGISTER)
        add("POST", "/api/v1/system/{system}/actors/spawn", self.spawn, name=_SPAWN)
        add("POST", "/api/v1/system/{system}/actors/{actor}/invoke", self.invoke, name=_INVOKE)
        add("GET", "/api/v1/system/{system}/actors/{actor}", self.get_state, name=_STATE)
        add("GET", "/health", self.health, name="health")
        add("GET", "/health/liveness", self.health, name="liveness")
        add("GET", "/health/readiness", self.readiness, name="readiness")
        add("GET", "/metrics", self.prometheus)
        add("*", "/{tail:.*}", self.not_found)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, app: web.Application) -> None:
        await self.client.aclose()

    # -- plumbing --------------------------------------------------------------------------------

    def _answer(self, route: str, answer: wire.Answer, started: float) -> web.Response:
        self.metrics.observe(route, answer.http, time.perf_counter() - started)
        return web.Response(body=answer, status=answer.http, content_type=OCTET)

    def _refuse(
        self, route: str | None, http: int, message: str, started: float, *, unread: bool = False
    ) -> web.Response:
        """A refusal; ``unread`` (the body was not read) also ends the connection after this
        answer, so the rest of an unwanted body is never taken for the next request."""
        body = _error_body(route, protocol_pb2.ERROR, message)
        self.metrics.observe(route or "other", http, time.perf_counter() - started)
        if route is None:
            response = web.Response(text=message, status=http)
        else:
            response = web.Response(body=body, status=http, content_type=OCTET)
        if unread:
            response.force_close()
        return response

    async def _body(self, request: web.Request, route: str, started: float) -> bytes | web.Response:
        """The raw protobuf body, or the refusal to send instead."""
        if "Content-Type" in request.headers:
            mime = request.content_type
            if mime not in _PROTOBUF:
                if mime == "application/json":
                    return await self._json_refusal(request, route, started)
                message = (
                    f"unsupported content type {request.headers['Content-Type']!r}: send "
                    "application/octet-stream or application/protobuf"
                )
                return self._refuse(route, 415, message, started, unread=True)
        length = request.content_length
        if length is not None and length > self.max_body:
            return self._too_large(route, length, started)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(route, None, started)

    def _too_large(self, route: str, length: int | None, started: float) -> web.Response:
        size = f"{length} bytes" if length is not None else "the body"
        message = f"{size} exceeds the limit of {self.max_body} bytes"
        return self._refuse(route, 413, message, started, unread=True)

    async def _json_refusal(self, request: web.Request, route: str, started: float) -> web.Response:
        """Upstream parses JSON, then its protobuf handlers refuse it (checklist A9)."""
        try:
            raw = await request.read()
            params = json.loads(raw or b"{}")
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(route, None, started)
        except ValueError as exc:
            return self._refuse(route, 400, f"body is not valid JSON: {exc}", started)
        details = json.dumps(params, separators=(",", ":"))[:500]
        message = f"{_JSON_PREFIX[route]}. Details: {details} (this route takes protobuf only)"
        return self._refuse(route, 500, message, started)

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.name  # the matched route, whatever the raw path said
        if route in _OPEN:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if self._bearer is not None and hmac.compare_digest(given, self._bearer):
            return await handler(request)
        protocol = route if route in _JSON_PREFIX else None
        message = "missing or wrong token: send Authorization: Bearer <token>"
        response = self._refuse(protocol, 401, message, time.perf_counter(), unread=True)
        response.headers["WWW-Authenticate"] = 'Bearer realm="spawn-lab"'
        return response

    # -- protocol routes ---------------------------------------------------------------------------

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await self._body(request, _INVOKE, started)
        if not isinstance(body, bytes):
            return body
        if self.state.draining:
            return self._refuse(_INVOKE, 503, _SHUTTING_DOWN, started)
        answer = await wire.invoke_async(self.system, body, json_url=self.json_url)
        return self._answer(_INVOKE, answer, started)

    async def register(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await self._body(request, _REGISTER, started)
        if not isinstance(body, bytes):
            return body
        if self.state.draining:
            message = "Error on create Actors: you can't register actors when node is stopping"
            return self._refuse(_REGISTER, 500, message, started)
        answer, profile = await asyncio.to_thread(
            wire.register_bytes, self.system, body, self._host
        )
        if profile is not None and answer.http == 200:
            self.json_url = profile.json_url
        return self._answer(_REGISTER, answer, started)

    def _host(self, profile: legacy.SdkProfile) -> RemoteHost:
        self.profiles[profile.library or "(unnamed)"] = profile
        return RemoteHost(self.client, profile, self.system)

    async def spawn(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await self._body(request, _SPAWN, started)
        if not isinstance(body, bytes):
            return body
        raw = request.query.get("revision", "0")
        try:
            revision = int(raw)
        except ValueError:
            return self._refuse(_SPAWN, 400, f"revision must be an integer, got {raw!r}", started)
        if self.state.draining:
            return self._refuse(_SPAWN, 503, _SHUTTING_DOWN, started)
        answer = await asyncio.to_thread(wire.spawn_bytes, self.system, body, revision)
        return self._answer(_SPAWN, answer, started)

    async def get_state(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        info = request.match_info
        answer = await asyncio.to_thread(
            wire.state_bytes, self.system, info["system"], info["actor"], json_url=self.json_url
        )
        return self._answer(_STATE, answer, started)

    # -- operations -------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "up"})

    async def readiness(self, request: web.Request) -> web.StreamResponse:
        if self.state.draining:
            return web.json_response({"status": "down"}, status=503)
        return web.json_response({"status": "up"})

    async def prometheus(self, request: web.Request) -> web.StreamResponse:
        infos = await asyncio.to_thread(self.system.actors)
        actors = Counter(
            "template" if i.template else ("active" if i.active else "passive") for i in infos
        )
        text = self.metrics.render(
            actors=actors, user_function=self.client.calls, draining=self.state.draining
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        answer = await self.transcoder.handle(request)
        if answer is not None:
            return answer
        return web.Response(text="Not found!", status=404)


#: The Proxy behind an app, for tests, the CLI and the notebook UI.
PROXY: Final = web.AppKey("spawn_lab_proxy", Proxy)


def serve_http(
    system: ActorSystem,
    host: str = "127.0.0.1",
    port: int = 9001,
    token: str | None = None,
    *,
    user_function: str | None = None,
    user_function_timeout: float = 30.0,
    max_body: int = DEFAULT_MAX_BODY,
) -> HttpServer:
    """Serve ``system`` as a Spawn proxy on its own thread; returns once it listens.

    ``port=0`` picks a free port (see ``.url``). ``token`` (default: ``$SPAWN_LAB_TOKEN``) makes
    every route but ``/health*`` require ``Authorization: Bearer <token>``. ``user_function``
    (``HOST:PORT`` or URL) is where SDK-registered actors run; see :func:`user_function_address`.
    """
    if token is None:
        token = os.environ.get("SPAWN_LAB_TOKEN") or None
    base_url = user_function_address(user_function)

    def make_app(state: ServerState) -> web.Application:
        loop = asyncio.get_running_loop()
        client = UserFunctionClient(base_url, loop, timeout=user_function_timeout)
        proxy = Proxy(system, client, state, token=token, max_body=max_body)
        app = proxy.app()
        app[PROXY] = proxy
        return app

    return HttpServer(make_app, host, port, name=f"spawn-lab-proxy-{system.name}")
