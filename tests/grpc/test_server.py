"""Part 3: actor services on grpc.aio: dispatch (H57-H59), streaming, reflection, health, errors.

The client here is a raw-bytes grpc channel in the test process (no stubs), so that requests
no stub would send (corrupt bytes, unknown methods) can be sent too. test_e2e.py drives the
server from generated stubs in another process.
"""

from __future__ import annotations

import textwrap
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import spawn_lab as sl
from spawn_lab.core.model import ActorDefinition, ActorSettings, Kind
from spawn_lab.core.trace import EventKind
from spawn_lab.protobuf import CompiledProto, compile_proto
from spawn_lab.protocol.spawn.actors import healthcheck_pb2
from spawn_lab.transports.grpc import GrpcServer, serve_grpc

from .conftest import PACKAGE, rpc_error, unary, wait_for

COUNTER = f"/{PACKAGE}.Counter"
GREETER = f"/{PACKAGE}.Greeter"
HEALTH = "/spawn.actors.healthcheck.HealthCheckActor"


def _invokes(system: sl.ActorSystem, actor: str) -> list[str]:
    return [e.action for e in system.events() if e.kind is EventKind.INVOKE and e.actor == actor]


def test_grpc_unary_named_actor_is_invoked_with_the_rpc_name(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    """H57: a unary rpc on a NAMED actor named like the service invokes action = rpc name;
    a value reply is the output message, a noop reply is Empty."""
    reply = unary(channel, f"{GREETER}/Hello")(proto.HelloRequest(name="ada").SerializeToString())
    assert proto.HelloReply.FromString(reply).greeting == "hello ada"
    assert unary(channel, f"{GREETER}/Ping")(b"") == empty_pb2.Empty().SerializeToString()
    assert _invokes(system, "Greeter") == ["Hello", "Ping"]


def test_grpc_unary_unnamed_actor_spawns_the_instance_named_by_actor_id(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    """H58: an UNNAMED service with input field ``id [(spawn.actors.actor_id)=true] = "u1"``
    spawns instance u1 (parent = the service's actor) and invokes it."""
    add = unary(channel, f"{COUNTER}/Add")
    assert proto.Total.FromString(add(proto.AddRequest(id="u1", amount=2).SerializeToString()))
    out = add(proto.AddRequest(id="u1", amount=3).SerializeToString())
    assert proto.Total.FromString(out).value == 5
    add(proto.AddRequest(id="u2", amount=1).SerializeToString())
    spawned = {e.actor: e.detail["parent"] for e in system.events() if e.kind is EventKind.SPAWN}
    assert spawned == {"u1": "Counter", "u2": "Counter"}
    assert system.state("u1") == proto.Total(value=5) and system.state("u2").value == 1
    assert _invokes(system, "u1") == ["Add", "Add"]


def test_grpc_unregistered_actor_is_not_found(channel: grpc.Channel) -> None:
    """H59: an rpc to a service whose actor is not registered gives NOT_FOUND."""
    error = rpc_error(lambda: unary(channel, f"/{PACKAGE}.Ghost/Boo")(b""))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "actor 'Ghost'" in error.details() and "'grpc-test'" in error.details()


def test_grpc_bad_calls_get_their_status_and_the_server_keeps_serving(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    add = unary(channel, f"{COUNTER}/Add")
    cases = [
        (f"/{PACKAGE}.Counter/Nope", b"", grpc.StatusCode.UNIMPLEMENTED, "Method not found"),
        (f"/{PACKAGE}.Nowhere/Add", b"", grpc.StatusCode.UNIMPLEMENTED, "Method not found"),
        (f"{COUNTER}/Add", b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT, "does not decode"),
        (f"{COUNTER}/Add", b"\x08", grpc.StatusCode.INVALID_ARGUMENT, "lab.grpctests.AddRequest"),
        (
            f"{COUNTER}/Add",
            proto.AddRequest(id="", amount=1).SerializeToString(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid actor name ''",
        ),
        (
            f"{COUNTER}/Fail",
            proto.AddRequest(id="u1", amount=4).SerializeToString(),
            grpc.StatusCode.UNKNOWN,
            "u1.Fail raised ValueError: cannot add 4 today",
        ),
    ]
    for path, data, code, text in cases:
        error = rpc_error(lambda path=path, data=data: unary(channel, path)(data))
        assert (error.code(), text in error.details()) == (code, True), (path, error.details())
        assert "Traceback" not in error.details()
        out = add(proto.AddRequest(id="u1", amount=1).SerializeToString())  # still serving
    assert proto.Total.FromString(out).value == len(cases)


def test_grpc_handler_reply_of_the_wrong_type_is_unknown(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    wrong = proto.actor("Greeter")
    wrong.rpc(lambda ctx, request: proto.Total(value=1), name="Hello")
    wrong.rpc(lambda ctx, request: {"greeting": 5}, name="Ping")
    system.register(wrong)
    error = rpc_error(lambda: unary(channel, f"{GREETER}/Hello")(b""))
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert "answered 'lab.grpctests.Total', the rpc returns 'lab.grpctests.HelloReply'" in (
        error.details()
    )


def test_grpc_dict_reply_goes_through_the_json_mapping(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    greeter = proto.actor("Greeter")
    greeter.rpc(lambda ctx, request: {"greeting": f"hi {request.name}"}, name="Hello")
    greeter.rpc(lambda ctx, request: None, name="Ping")
    system.register(greeter)
    reply = unary(channel, f"{GREETER}/Hello")(proto.HelloRequest(name="bo").SerializeToString())
    assert proto.HelloReply.FromString(reply).greeting == "hi bo"


def test_grpc_server_streaming_acks_with_empty_after_an_async_invocation(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    """§9.1 server streaming with D13 fixed: one async invocation, then one Empty."""
    notify = channel.unary_stream(f"{COUNTER}/Notify")
    replies = list(notify(proto.AddRequest(id="s1", amount=6).SerializeToString(), timeout=10))
    assert replies == [b""]
    wait_for(lambda: system.state("s1") == proto.Total(value=6))
    invoke = [e for e in system.events() if e.kind is EventKind.INVOKE and e.actor == "s1"]
    assert invoke[0].detail[2] is True  # asynchronous


def test_grpc_client_streaming_invokes_once_per_message_and_acks(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    feed = channel.stream_unary(f"{COUNTER}/Feed")
    requests = (proto.AddRequest(id="f1", amount=n).SerializeToString() for n in (1, 2, 3))
    assert feed(requests, timeout=10) == b""
    wait_for(lambda: system.state("f1") == proto.Total(value=6))
    assert _invokes(system, "f1") == ["Feed"] * 3


def test_grpc_bidi_streaming_answers_each_message_in_order(
    proto: CompiledProto, channel: grpc.Channel
) -> None:
    chat = channel.stream_stream(f"{COUNTER}/Chat")
    requests = (proto.AddRequest(id="c1", amount=n).SerializeToString() for n in (1, 2, 3))
    totals = [proto.Total.FromString(r).value for r in chat(requests, timeout=10)]
    assert totals == [1, 3, 6]


def test_grpc_reflection_lists_services_and_serves_their_descriptors(
    channel: grpc.Channel,
) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)  # v1alpha
    services = set(database.get_services())
    assert {f"{PACKAGE}.Counter", f"{PACKAGE}.Greeter", HEALTH[1:]} <= services
    assert "grpc.reflection.v1.ServerReflection" in services
    pool = DescriptorPool(database)
    add = pool.FindServiceByName(f"{PACKAGE}.Counter").methods_by_name["Add"]
    assert add.input_type.full_name == f"{PACKAGE}.AddRequest"
    assert [f.name for f in add.input_type.fields] == ["id", "amount"]
    health = pool.FindServiceByName(HEALTH[1:])
    assert health.methods_by_name["Readiness"].output_type.name == "HealthCheckReply"

    v1 = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=f"{PACKAGE}.Total")
    (raw,) = list(v1(iter([request.SerializeToString()]), timeout=10))
    files = reflection_pb2.ServerReflectionResponse.FromString(raw).file_descriptor_response
    assert len(files.file_descriptor_proto) >= 2  # the file and what it imports


def test_grpc_health_check_actor_answers_liveness_and_readiness(
    channel: grpc.Channel,
) -> None:
    """§9.4, checklist B16: Liveness and Readiness answer HealthCheckReply{status OK} (D14)."""
    for method, details in (("Liveness", "I'm still alive!"), ("Readiness", "I'm alive!")):
        reply = healthcheck_pb2.HealthCheckReply.FromString(
            unary(channel, f"{HEALTH}/{method}")(b"")
        )
        assert (reply.status.status, reply.status.details) == ("OK", details)
        assert reply.status.updated_at.seconds > 1_700_000_000


def test_grpc_view_rpc_is_a_query_of_the_runtime(
    proto: CompiledProto, system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    """§8.5, checklist G56: a view rpc queries the projection's table; no handler runs."""
    system.register(
        proto.actor("Catalog", handlers={"Record": lambda ctx, row: sl.Value(state=row)})
    )
    unary(channel, f"/{PACKAGE}.Catalog/Record")(proto.Row(name="x").SerializeToString())
    system.run_until_idle()
    search = unary(channel, f"/{PACKAGE}.Catalog/Search")
    reply = proto.SearchReply.FromString(search(proto.SearchRequest(name="x").SerializeToString()))
    assert [row.name for row in reply.rows] == ["x"]
    empty = proto.SearchReply.FromString(search(proto.SearchRequest(name="y").SerializeToString()))
    assert list(empty.rows) == []
    assert _invokes(system, "Catalog")[-1] == "Search"


def test_grpc_proxy_kind_actor_is_a_failed_precondition(
    system: sl.ActorSystem, channel: grpc.Channel
) -> None:
    """§9.1: PROXY and UNKNOW_KIND actors have no id to build, so the call cannot be made."""
    system.register(ActorDefinition("Ghost", ActorSettings(kind=Kind.PROXY, stateful=False)))
    error = rpc_error(lambda: unary(channel, f"/{PACKAGE}.Ghost/Boo")(b""))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "'Ghost' is PROXY" in error.details()


LIVE_V1 = """
syntax = "proto3";
package lab.live;
import "google/protobuf/empty.proto";
import "spawn/actors/extensions.proto";
message N { int32 n = 1; }
service Live {
  option (spawn.actors.actor) = { kind: NAMED };
  rpc One(N) returns (N);
}
"""


def test_grpc_recompiled_proto_is_served_without_a_restart(
    system: sl.ActorSystem, server: GrpcServer, channel: grpc.Channel
) -> None:
    v1 = compile_proto(textwrap.dedent(LIVE_V1), "grpc_tests/live.proto")
    system.register(v1.actor("Live", handlers={"One": lambda ctx, r: v1.N(n=r.n + 1)}))
    assert (
        v1.N.FromString(unary(channel, "/lab.live.Live/One")(v1.N(n=1).SerializeToString())).n == 2
    )

    text = LIVE_V1.replace("rpc One(N) returns (N);", "rpc Two(N) returns (N);")
    v2 = compile_proto(textwrap.dedent(text), "grpc_tests/live.proto")
    handlers: dict[str, Any] = {"Two": lambda ctx, r: v2.N(n=r.n * 2)}
    system.register(v2.actor("Live", handlers=handlers))
    assert (
        v2.N.FromString(unary(channel, "/lab.live.Live/Two")(v2.N(n=4).SerializeToString())).n == 8
    )
    error = rpc_error(lambda: unary(channel, "/lab.live.Live/One")(b""))
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "lab.live.Live" in repr(server)


def test_grpc_server_binds_127_0_0_1_and_reports_its_port(server: GrpcServer) -> None:
    assert server.host == "127.0.0.1" and server.port > 0
    assert server.address == f"127.0.0.1:{server.port}"
    server.close()
    server.close()  # idempotent
    assert server.closed


def test_grpc_server_close_stops_serving(system: sl.ActorSystem) -> None:
    server = serve_grpc(system)
    address = server.address
    server.close(0.0)
    with grpc.insecure_channel(address) as channel:
        error = rpc_error(lambda: channel.unary_unary(f"{HEALTH}/Liveness")(b"", timeout=2))
    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
