"""Part 4: google.api.http transcoding on aiohttp: JSON in and out, path and query parameters."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

import spawn_lab as sl
from spawn_lab.protobuf import CompiledProto
from spawn_lab.transports.grpc import serve_transcoding, transcoding_routes
from spawn_lab.transports.grpc.templates import parse_template
from spawn_lab.transports.http.runner import HttpServer


@pytest.fixture
def http(system: sl.ActorSystem) -> Iterator[HttpServer]:
    with serve_transcoding(system) as server:
        yield server


def call(base: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
    """(status, JSON) of one request; ``raw`` sends bytes as they are."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_transcode_post_body_star_with_path_parameter(
    http: HttpServer, system: sl.ActorSystem, proto: CompiledProto
) -> None:
    assert call(http.url, "POST", "/v1/counters/h1/add", {"amount": 4}) == (200, {"value": 4})
    # the path wins over the body, as in grpc-gateway
    status, out = call(http.url, "POST", "/v1/counters/h1/add", {"id": "other", "amount": "3"})
    assert (status, out) == (200, {"value": 7})
    assert system.state("h1") == proto.Total(value=7)


def test_transcode_get_with_path_and_query_parameters(
    http: HttpServer, system: sl.ActorSystem
) -> None:
    call(http.url, "POST", "/v1/counters/g1/add", {"amount": 2})
    assert call(http.url, "GET", "/v1/counters/g1") == (200, {"value": 2})
    assert call(http.url, "GET", "/v1/hello/grace%20hopper") == (
        200,
        {"greeting": "hello grace hopper"},
    )
    assert call(http.url, "GET", "/v1/counters/g2") == (200, {})  # default output: no fields


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"amount": 1', "request body is not JSON"),
        (b'{"amount": "many"}', "Failed to parse amount field"),
        (b'{"amount": 1.5}', "amount"),
        (b'{"amuont": 1}', 'has no field named "amuont"'),
        (b"[1, 2]", "must be a JSON object (lab.grpctests.AddRequest), got list"),
    ],
)
def test_transcode_bad_json_is_400_naming_the_field(
    http: HttpServer, system: sl.ActorSystem, raw: bytes, needle: str
) -> None:
    status, body = call(http.url, "POST", "/v1/counters/b1/add", raw=raw)
    assert (status, body["code"]) == (400, 3)
    assert needle in body["message"]
    assert call(http.url, "POST", "/v1/counters/b1/add", {"amount": 1}) == (200, {"value": 1})


def test_transcode_bad_query_parameters_are_400_naming_them(http: HttpServer) -> None:
    status, body = call(http.url, "GET", "/v1/counters/q1?colour=red")
    assert status == 400 and "query parameter 'colour'" in body["message"]
    status, body = call(http.url, "GET", "/v1/counters/q1?id=a&id=b")
    assert status == 400 and "'id' given 2 times" in body["message"]


def test_transcode_failures_use_grpc_gateway_codes(http: HttpServer) -> None:
    status, body = call(http.url, "POST", "/v1/counters/e1/fail", {"amount": 2})
    assert (status, body["code"]) == (500, 2)
    assert body["message"] == "e1.Fail raised ValueError: cannot add 2 today"
    status, body = call(http.url, "GET", "/v1/ghost")  # actor not registered
    assert (status, body["code"]) == (404, 5) and "actor 'Ghost'" in body["message"]
    status, body = call(http.url, "GET", "/v1/nothing/here")
    assert (status, body["code"]) == (404, 5)
    status, body = call(http.url, "DELETE", "/v1/counters/e1/add")
    assert status == 405 and "takes POST" in body["message"]
    assert call(http.url, "POST", "/v1/counters/e1/add", {"amount": 1}) == (200, {"value": 1})


def test_transcode_health_routes_of_the_health_check_actor(http: HttpServer) -> None:
    status, body = call(http.url, "GET", "/health/liveness")
    assert status == 200 and body["status"]["details"] == "I'm still alive!"
    assert body["status"]["updatedAt"].endswith("Z")
    assert call(http.url, "GET", "/health/readiness")[1]["status"]["status"] == "OK"


def test_transcoding_routes_mount_on_another_app_before_its_catch_all(
    system: sl.ActorSystem,
) -> None:
    def make_app(state: object) -> web.Application:
        async def not_found(request: web.Request) -> web.Response:
            return web.Response(text="Not found!", status=404)

        app = web.Application()
        app.add_routes(transcoding_routes(system))
        app.router.add_route("*", "/{tail:.*}", not_found)
        return app

    with HttpServer(make_app) as server:
        assert call(server.url, "POST", "/v1/counters/m1/add", {"amount": 5}) == (
            200,
            {"value": 5},
        )
        assert call(server.url, "GET", "/v1/hello/x") == (200, {"greeting": "hello x"})
        request = urllib.request.Request(server.url + "/health/liveness")
        with pytest.raises(urllib.error.HTTPError) as info:  # health is not mounted here
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 404 and info.value.read() == b"Not found!"


def test_path_template_variables_patterns_and_verbs() -> None:
    template = parse_template("/v1/{name=shelves/*}/books/{book.id}:publish")
    assert template.match("/v1/shelves/s%201/books/7:publish") == {
        "name": "shelves/s 1",
        "book.id": "7",
    }
    assert template.match("/v1/shelves/a/b/books/7:publish") is None
    assert parse_template("/v1/{rest=**}").match("/v1/a/b/c") == {"rest": "a/b/c"}
    for bad in ("v1", "/v1/{id", "/v1/a{id}", "/v1//x", "/v1/{1x}"):
        with pytest.raises(sl.RegistrationError, match=repr(bad).replace("{", r"\{")):
            parse_template(bad)
