"""Serve a notebook system's actors to an external Spawn proxy, and register them with it.

Typical use from a cell::

    uf = serve_user_function(system, port=8090)         # the proxy calls us here
    register_with_proxy(system, "http://127.0.0.1:9001")  # then tell the proxy about our actors

The proxy must know where the user function listens: a Spawn sidecar reads
``USER_FUNCTION_HOST``/``USER_FUNCTION_PORT``; ``spawn-lab serve`` also takes ``--user-function``.
"""

from __future__ import annotations

import platform
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from aiohttp import web
from google.protobuf.message import DecodeError

from spawn_lab.core.errors import RegistrationError, RemoteProtocolError, SpawnLabError
from spawn_lab.protocol import codec
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.transports.http.client import ACTIONS_PATH
from spawn_lab.transports.http.runner import HttpServer, ServerState
from spawn_lab.transports.userfn import act_async

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("register_with_proxy", "serve_user_function", "service_info")

_OCTET: Final = "application/octet-stream"


def serve_user_function(
    system: ActorSystem, host: str = "127.0.0.1", port: int = 8090
) -> HttpServer:
    """Answer ``POST /api/v1/actors/actions`` for ``system``'s notebook actors on its own thread."""

    def make_app(state: ServerState) -> web.Application:
        async def actions(request: web.Request) -> web.StreamResponse:
            answer = await act_async(system, await request.read())
            kind = _OCTET if answer.http == 200 else "text/plain"
            return web.Response(body=answer, status=answer.http, content_type=kind)

        async def health(request: web.Request) -> web.StreamResponse:
            return web.json_response({"status": "down" if state.draining else "up"})

        async def not_found(request: web.Request) -> web.StreamResponse:
            return web.Response(text="Not found!", status=404)

        app = web.Application(client_max_size=8_000_001)
        app.router.add_post(ACTIONS_PATH, actions)
        app.router.add_get("/health", health)
        app.router.add_route("*", "/{tail:.*}", not_found)
        return app

    return HttpServer(make_app, host, port, name=f"spawn-lab-userfn-{system.name}")


def service_info() -> protocol_pb2.ServiceInfo:
    """How spawn_lab introduces itself when it registers actors (protocol 1.2, as the proxy)."""
    from spawn_lab import __version__

    return protocol_pb2.ServiceInfo(
        service_name="spawn-lab",
        service_version=__version__,
        service_runtime=f"Python {platform.python_version()}",
        support_library_name="spawn-lab",
        support_library_version=__version__,
        protocol_major_version=1,
        protocol_minor_version=2,
    )


def register_with_proxy(
    system: ActorSystem,
    proxy_url: str,
    actors: Iterable[str] | None = None,
    *,
    token: str | None = None,
    timeout: float = 10.0,
) -> protocol_pb2.RegistrationResponse:
    """Register ``actors`` (default: every notebook actor of ``system``) with a Spawn proxy.

    Each is sent with an ActorState and a Metadata message (checklist K66). Blocks this thread
    only. Raises RegistrationError if the proxy refuses, naming its reason.
    """
    names = list(actors) if actors is not None else _local_names(system)
    if not names:
        raise RegistrationError(f"actor system {system.name!r} has no notebook actors to register")
    definitions = [system.definition(name) for name in names]
    remote = [d.name for d in definitions if d.remote]
    if remote:
        raise RegistrationError(
            f"actors {remote!r} were registered by an SDK; only notebook actors run here"
        )
    request = codec.registration_request(system.name, definitions, service_info())
    url = proxy_url.rstrip("/") + "/api/v1/system"
    headers = {"Content-Type": _OCTET, "Accept": _OCTET}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    post = urllib.request.Request(url, data=request.SerializeToString(), headers=headers)
    try:
        with urllib.request.urlopen(post, timeout=timeout) as reply:
            data = reply.read()
    except urllib.error.HTTPError as exc:  # a refusal still carries a RegistrationResponse
        data = exc.read()
    except OSError as exc:
        raise RemoteProtocolError(f"cannot reach the Spawn proxy at {url}: {exc}") from exc
    try:
        response = protocol_pb2.RegistrationResponse.FromString(data)
    except DecodeError as exc:
        raise RemoteProtocolError(
            f"the Spawn proxy at {url} answered bytes that are not a RegistrationResponse: "
            f"{data[:120]!r}"
        ) from exc
    if response.status.status != protocol_pb2.OK:
        raise RegistrationError(f"the Spawn proxy at {url} refused: {response.status.message}")
    return response


def _local_names(system: ActorSystem) -> list[str]:
    names = []
    for info in system.actors():
        if info.actor_id.parent:
            continue
        try:
            defn = system.definition(info.actor_id.name)
        except SpawnLabError:  # known to the store only
            continue
        if not defn.remote:
            names.append(defn.name)
    return names
