"""Shared pieces of the transport tests: golden fixture bytes, systems, servers, HTTP calls.

Every server here is real: aiohttp on 127.0.0.1, port 0, on its own thread. HTTP calls use the
standard library (``urllib``), so a test exercises exactly the bytes an SDK would send.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

import spawn_lab as sl
from spawn_lab.protocol import codec
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.transports.http import HttpServer, serve_http
from spawn_lab.transports.http.runner import ServerState

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
SYSTEM = "spawn-system"
OCTET = "application/octet-stream"


def golden(name: str) -> bytes:
    """A fixture file (``spawn-python-sdk/uf-...bin``); fails, never skips, when it is missing."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(
            f"golden fixture {path} is missing: ../shared/fixtures must sit beside the repo"
        )
    return path.read_bytes()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def invocation(self) -> protocol_pb2.InvocationResponse:
        return protocol_pb2.InvocationResponse.FromString(self.body)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    content_type: str | None = OCTET,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP request with urllib; error statuses are replies too."""
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


def invocation_request(
    actor: str,
    action: str,
    payload: object = sl.NOOP,
    *,
    system: str = SYSTEM,
    **fields: object,
) -> protocol_pb2.InvocationRequest:
    request = protocol_pb2.InvocationRequest(action_name=action, **fields)  # type: ignore[arg-type]
    request.system.name = system
    request.actor.id.name = actor
    request.actor.id.system = system
    codec.set_payload(request, payload)
    return request


def invoke(base_url: str, request: protocol_pb2.InvocationRequest, **kwargs: object) -> Reply:
    actor = request.actor.id.name
    url = f"{base_url}/api/v1/system/{request.system.name}/actors/{actor}/invoke"
    return http("POST", url, request.SerializeToString(), **kwargs)  # type: ignore[arg-type]


def counter_actor(name: str = "counter") -> sl.Actor:
    """``add(n)`` adds to the state and answers the new total; ``echo`` answers its context."""
    actor = sl.Actor(name, state=0)

    @actor.action
    def add(ctx: sl.Context, amount: int) -> sl.Value:
        total = ctx.state + amount
        return sl.Value(total, state=total)

    @actor.action
    def echo(ctx: sl.Context, payload: object) -> dict[str, object]:
        return {
            "payload": None if payload is sl.NOOP else payload,
            "metadata": ctx.metadata,
            "caller": ctx.caller.name if ctx.caller else None,
            "self": [ctx.self.name, ctx.self.parent],
        }

    return actor


@pytest.fixture
def system() -> Iterator[sl.ActorSystem]:
    with sl.ActorSystem(SYSTEM, store="memory://") as opened:
        yield opened


@dataclass
class FakeUserFunction:
    """A user function whose answers a test scripts; it records every ActorInvocation."""

    respond: Callable[[protocol_pb2.ActorInvocation], tuple[int, str, bytes]]
    seen: list[protocol_pb2.ActorInvocation] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: HttpServer | None = None

    def app(self, state: ServerState) -> web.Application:
        async def actions(request: web.Request) -> web.Response:
            body = await request.read()
            invocation = protocol_pb2.ActorInvocation.FromString(body)
            with self.lock:
                self.raw.append(body)
                self.seen.append(invocation)
            status, content_type, data = await _maybe_async(self.respond(invocation))
            return web.Response(body=data, status=status, content_type=content_type)

        app = web.Application()
        app.router.add_post("/api/v1/actors/actions", actions)
        return app

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def calls(self, action: str) -> list[protocol_pb2.ActorInvocation]:
        with self.lock:
            return [i for i in self.seen if i.action_name == action]


async def _maybe_async(value: object) -> tuple[int, str, bytes]:
    if hasattr(value, "__await__"):
        value = await value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def answer(
    state: object = None,
    reply: object = sl.NOOP,
    *,
    tags: dict[str, str] | None = None,
    context: bool = True,
    workflow: protocol_pb2.Workflow | None = None,
    checkpoint: bool = False,
) -> tuple[int, str, bytes]:
    """A 200 ActorInvocationResponse as an SDK would send it."""
    response = protocol_pb2.ActorInvocationResponse(checkpoint=checkpoint)
    if context:
        response.updated_context.SetInParent()
        if state is not None:
            response.updated_context.state.CopyFrom(codec.pack_value(state))
        response.updated_context.tags.update(tags or {})
    codec.set_payload(response, reply)
    if workflow is not None:
        response.workflow.CopyFrom(workflow)
    return 200, OCTET, response.SerializeToString()


@pytest.fixture
def user_function() -> Iterator[Callable[..., FakeUserFunction]]:
    """``user_function(respond)`` starts a fake user function; all are closed after the test."""
    started: list[FakeUserFunction] = []

    def start(
        respond: Callable[[protocol_pb2.ActorInvocation], tuple[int, str, bytes]],
    ) -> FakeUserFunction:
        fake = FakeUserFunction(respond)
        fake.server = HttpServer(fake.app, port=0, name="fake-user-function")
        started.append(fake)
        return fake

    yield start
    for fake in started:
        assert fake.server is not None
        fake.server.close()


@pytest.fixture
def proxy_for() -> Iterator[Callable[..., HttpServer]]:
    """``proxy_for(system, **options)`` serves a system as a proxy; closed after the test."""
    servers: list[HttpServer] = []

    def start(target: sl.ActorSystem, **options: object) -> HttpServer:
        options.setdefault("user_function", "127.0.0.1:9")  # discard port: nothing listens
        server = serve_http(target, port=0, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
