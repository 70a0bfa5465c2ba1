"""The proxy's HTTP surface (spec §1.2, checklist A) over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

import spawn_lab as sl
from spawn_lab.protocol import codec, payloads
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2
from spawn_lab.transports.http import HttpServer

from .conftest import SYSTEM, counter_actor, golden, http, invocation_request, invoke

Proxy = Callable[..., HttpServer]


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/protobuf"])
def test_register_python_sdk_bytes_is_accepted(
    system: sl.ActorSystem, proxy_for: Proxy, content_type: str
) -> None:
    """Checklist A1 and A2: the real SDK's registration, as octet-stream or protobuf, gives
    200 {OK, "Accepted"} and proxy_info {1, 2, "spawn", "2.0.0-RC9"}."""
    server = proxy_for(system)
    reply = http(
        "POST",
        server.url + "/api/v1/system",
        golden("spawn-python-sdk/proxy-register.bin"),
        content_type,
    )
    response = protocol_pb2.RegistrationResponse.FromString(reply.body)
    assert reply.status == 200
    assert (response.status.status, response.status.message) == (protocol_pb2.OK, "Accepted")
    assert (
        response.proxy_info.protocol_major_version,
        response.proxy_info.protocol_minor_version,
    ) == (1, 2)
    assert (response.proxy_info.proxy_name, response.proxy_info.proxy_version) == (
        "spawn",
        "2.0.0-RC9",
    )
    assert {"joe", "mike"} <= {i.actor_id.name for i in system.actors()}


def test_register_while_draining_is_500_error_on_create_actors(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    """Checklist A3: registration while draining answers 500 "Error on create Actors"."""
    server = proxy_for(system)
    server.drain()
    reply = http(
        "POST", server.url + "/api/v1/system", golden("spawn-python-sdk/proxy-register.bin")
    )
    response = protocol_pb2.RegistrationResponse.FromString(reply.body)
    assert reply.status == 500
    assert response.status.status == protocol_pb2.ERROR
    assert response.status.message.startswith("Error on create Actors")


def test_invoke_over_http_answers_and_ignores_path_segments(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    """Checklist A4 and A8: the body's system and actor count, not the path's."""
    system.register(counter_actor())
    server = proxy_for(system)
    body = invocation_request("counter", "add", 2).SerializeToString()
    reply = http("POST", server.url + "/api/v1/system/X/actors/Y/invoke", body)
    response = reply.invocation()
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert response.status.status == protocol_pb2.OK
    assert payloads.unpack(response.value) == 2
    assert response.actor.id.name == "counter"


def test_invoke_python_sdk_async_bytes_answers_without_payload(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    """Checklist A5 with the real SDK's async request (its joe is a notebook actor here)."""
    joe = sl.Actor("joe")
    seen: list[object] = []

    @joe.action
    def setLanguage(ctx: sl.Context, payload: object) -> None:
        seen.append(payload)

    system.register(joe)
    server = proxy_for(system)
    reply = http(
        "POST",
        server.url + "/api/v1/system/spawn-system/actors/joe/invoke",
        golden("spawn-python-sdk/proxy-invoke-async.bin"),
    )
    response = reply.invocation()
    assert (reply.status, response.status.status) == (200, protocol_pb2.OK)
    assert response.WhichOneof("payload") is None
    system.run_until_idle(5)
    assert len(seen) == 1 and seen[0].type_url == "type.googleapis.com/domain.Request"  # type: ignore[attr-defined]


def test_invoke_json_body_is_upstream_style_error(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    """Checklist A9: JSON on the invoke route gives 500 with a protobuf InvocationResponse
    whose message starts "Error on invoke Actor. Details:"."""
    server = proxy_for(system)
    reply = http(
        "POST",
        server.url + "/api/v1/system/spawn-system/actors/joe/invoke",
        json.dumps({"action_name": "add"}).encode(),
        "application/json",
    )
    response = reply.invocation()
    assert reply.status == 500
    assert response.status.status == protocol_pb2.ERROR
    assert response.status.message.startswith(
        'Error on invoke Actor. Details: {"action_name":"add"}'
    )


def test_health_routes_and_readiness_while_draining(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    """Checklist A10: health and liveness say up; readiness says down (503) while draining."""
    server = proxy_for(system)
    for path in ("/health", "/health/liveness", "/health/readiness"):
        reply = http("GET", server.url + path, content_type=None)
        assert (reply.status, json.loads(reply.body)) == (200, {"status": "up"})
        assert reply.headers["Content-Type"].startswith("application/json")
    server.drain()
    reply = http("GET", server.url + "/health/readiness", content_type=None)
    assert (reply.status, json.loads(reply.body)) == (503, {"status": "down"})
    assert http("GET", server.url + "/health/liveness", content_type=None).status == 200


def test_invoke_while_draining_is_refused(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    system.register(counter_actor())
    server = proxy_for(system)
    server.drain()
    reply = invoke(server.url, invocation_request("counter", "add", 1))
    assert reply.status == 503
    assert "shutting down" in reply.invocation().status.message


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("POST", "/api/v1/nope"), ("GET", "/api/v1/system")]
)
def test_unknown_route_is_404_not_found(
    system: sl.ActorSystem, proxy_for: Proxy, method: str, path: str
) -> None:
    """Checklist A11: anything else is 404 with the plain body "Not found!" (also under
    /api/v1 and for a wrong method, where upstream answers 500)."""
    server = proxy_for(system)
    reply = http(method, server.url + path, b"" if method == "POST" else None, content_type=None)
    assert (reply.status, reply.body) == (404, b"Not found!")


def test_unsupported_content_type_is_415_with_protobuf_error(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    server = proxy_for(system)
    reply = http("POST", server.url + "/api/v1/system/s/actors/a/invoke", b"hello", "text/plain")
    assert reply.status == 415
    assert "unsupported content type 'text/plain'" in reply.invocation().status.message


def test_body_over_the_limit_is_413(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    server = proxy_for(system, max_body=1_000)
    body = invocation_request("counter", "add", "x" * 2_000).SerializeToString()
    reply = http("POST", server.url + "/api/v1/system/s/actors/a/invoke", body)
    assert reply.status == 413
    assert "exceeds the limit of 1000 bytes" in reply.invocation().status.message
    small = http("POST", server.url + "/api/v1/system", b"x" * 999)
    assert small.status == 400  # under the limit: read, then refused for what it is


def test_default_body_limit_is_8_million_bytes(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    """Upstream's limit: 8,000,000 bytes pass; one more is refused from its Content-Length,
    without parsing, and the connection is closed after the answer."""
    server = proxy_for(system)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            "POST /api/v1/system HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 8000001\r\n\r\n"
        )
        sock.sendall(head.encode() + b"\x00" * 8_000_001)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    message = protocol_pb2.RegistrationResponse.FromString(body).status.message
    assert "8000001 bytes exceeds the limit of 8000000 bytes" in message
    at_limit = http("POST", server.url + "/api/v1/system", b"\x00" * 8_000_000)
    assert at_limit.status == 400  # read in full, then refused as not a registration


@pytest.mark.parametrize(
    ("path", "message_type", "expected"),
    [
        (
            "/api/v1/system/s/actors/a/invoke",
            protocol_pb2.InvocationResponse,
            "spawn.InvocationRequest",
        ),
        ("/api/v1/system", protocol_pb2.RegistrationResponse, "spawn.RegistrationRequest"),
        ("/api/v1/system/s/actors/spawn", protocol_pb2.SpawnResponse, "spawn.SpawnRequest"),
    ],
)
def test_undecodable_body_is_400_naming_what_failed(
    system: sl.ActorSystem, proxy_for: Proxy, path: str, message_type: type, expected: str
) -> None:
    server = proxy_for(system)
    reply = http("POST", server.url + path, b"\xff\xff\xff\xff garbage")
    status = message_type.FromString(reply.body).status
    assert reply.status == 400
    assert status.status == protocol_pb2.ERROR
    assert f"does not decode as {expected}" in status.message


def test_token_guards_every_route_but_health(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    system.register(counter_actor())
    server = proxy_for(system, token="s3cret")
    request = invocation_request("counter", "add", 1)
    refused = invoke(server.url, request)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in refused.invocation().status.message
    assert invoke(server.url, request, headers={"Authorization": "Bearer wrong"}).status == 401
    assert http("GET", server.url + "/metrics", content_type=None).status == 401
    assert http("GET", server.url + "/nope", content_type=None).status == 401
    assert http("GET", server.url + "/health", content_type=None).status == 200
    assert http("GET", server.url + "/health/readiness", content_type=None).status == 200
    allowed = invoke(server.url, request, headers={"Authorization": "Bearer s3cret"})
    assert (allowed.status, payloads.unpack(allowed.invocation().value)) == (200, 1)
    assert system.state("counter") == 1


def test_token_comes_from_the_environment(
    system: sl.ActorSystem, proxy_for: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPAWN_LAB_TOKEN", "from-env")
    server = proxy_for(system)
    assert http("GET", server.url + "/metrics", content_type=None).status == 401
    ok = http(
        "GET",
        server.url + "/metrics",
        content_type=None,
        headers={"Authorization": "Bearer from-env"},
    )
    assert ok.status == 200


def test_spawn_route_with_revision_and_bad_revision(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    system.register(sl.Actor("tmpl", kind="UNNAMED"))
    server = proxy_for(system)
    body = protocol_pb2.SpawnRequest(
        actors=[actor_pb2.ActorId(name="n1", system=SYSTEM, parent="tmpl")]
    ).SerializeToString()
    ok = http("POST", server.url + "/api/v1/system/spawn-system/actors/spawn?revision=3", body)
    assert (ok.status, protocol_pb2.SpawnResponse.FromString(ok.body).status.message) == (
        200,
        "Accepted",
    )
    assert "n1" in {i.actor_id.name for i in system.actors()}
    bad = http("POST", server.url + "/api/v1/system/spawn-system/actors/spawn?revision=x", body)
    assert bad.status == 400
    assert (
        "revision must be an integer, got 'x'"
        in protocol_pb2.SpawnResponse.FromString(bad.body).status.message
    )


def test_get_state_extension_over_http(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    """Intended D1, our documented extension: 200 with ActorState bytes, 404 when unknown."""
    system.register(counter_actor())
    server = proxy_for(system)
    invoke(server.url, invocation_request("counter", "add", 9))
    reply = http(
        "GET", server.url + "/api/v1/system/spawn-system/actors/counter", content_type=None
    )
    assert reply.status == 200
    assert payloads.unpack(actor_pb2.ActorState.FromString(reply.body).state) == 9
    missing = http(
        "GET", server.url + "/api/v1/system/spawn-system/actors/ghost", content_type=None
    )
    assert missing.status == 404
    assert (
        protocol_pb2.RequestStatus.FromString(missing.body).status == protocol_pb2.ACTOR_NOT_FOUND
    )


def test_metrics_are_prometheus_text(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    system.register(counter_actor())
    server = proxy_for(system)
    invoke(server.url, invocation_request("counter", "add", 1))
    invoke(server.url, invocation_request("counter", "nope", 1))
    reply = http("GET", server.url + "/metrics", content_type=None)
    text = reply.body.decode()
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE spawn_lab_http_requests_total counter" in text
    assert 'spawn_lab_http_requests_total{route="invoke",code="200"} 1' in text
    assert 'spawn_lab_http_requests_total{route="invoke",code="500"} 1' in text
    assert 'spawn_lab_actors{state="active"} 1' in text
    assert "spawn_lab_draining 0" in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_server_binds_loopback_by_default(system: sl.ActorSystem) -> None:
    from spawn_lab.transports.http import serve_http

    server = serve_http(system, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port > 0
    finally:
        server.close()
    assert server.closed
    server.close()  # idempotent


def test_registration_of_our_own_definitions_round_trips(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    """A RegistrationRequest built by the codec registers cleanly (the K66 shape)."""
    server = proxy_for(system)
    request = codec.registration_request(
        SYSTEM, [counter_actor("other").definition()], protocol_pb2.ServiceInfo(service_name="t")
    )
    reply = http("POST", server.url + "/api/v1/system", request.SerializeToString())
    assert reply.status == 200
    assert system.definition("other").remote


def test_missing_content_type_is_read_as_protobuf(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    """A lenient divergence: upstream parses nothing without a Content-Type and fails."""
    system.register(counter_actor())
    server = proxy_for(system)
    body = invocation_request("counter", "add", 4).SerializeToString()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            "POST /api/v1/system/s/actors/a/invoke HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 200 ")
    assert payloads.unpack(protocol_pb2.InvocationResponse.FromString(payload).value) == 4


def test_token_cannot_be_dodged_through_a_health_path(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    server = proxy_for(system, token="s3cret")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /health/../metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert not data.startswith(b"HTTP/1.1 200"), data[:200]


@pytest.mark.parametrize(("major", "minor"), [(0, 0), (9, 9)])
def test_register_accepts_any_protocol_version(
    system: sl.ActorSystem, proxy_for: Proxy, major: int, minor: int
) -> None:
    """Checklist B15: ServiceInfo protocol versions 0.0 or 9.9 are accepted."""
    server = proxy_for(system)
    info = protocol_pb2.ServiceInfo(
        service_name="probe", protocol_major_version=major, protocol_minor_version=minor
    )
    request = codec.registration_request(SYSTEM, [counter_actor("versioned").definition()], info)
    reply = http("POST", server.url + "/api/v1/system", request.SerializeToString())
    assert reply.status == 200
    decoded = protocol_pb2.RegistrationResponse.FromString(reply.body)
    assert decoded.status.status == protocol_pb2.OK


def test_invoke_in_another_system_is_not_found(system: sl.ActorSystem, proxy_for: Proxy) -> None:
    """Checklist J62: a request for another actor system (no NATS here) is an error naming it."""
    system.register(counter_actor())
    server = proxy_for(system)
    reply = invoke(server.url, invocation_request("counter", "add", 1, system="elsewhere"))
    answer = protocol_pb2.InvocationResponse.FromString(reply.body)
    assert answer.status.status in (protocol_pb2.ACTOR_NOT_FOUND, protocol_pb2.ERROR)
    assert "elsewhere" in answer.status.message
    assert system.state("counter") == 0
