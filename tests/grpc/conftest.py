"""A notebook-style proto with actor services, its Python handlers, and servers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import spawn_lab as sl
from spawn_lab.protobuf import CompiledProto, compile_proto
from spawn_lab.transports.grpc import GrpcServer, serve_grpc

PROTO_NAME = "grpc_tests/counter.proto"
PACKAGE = "lab.grpctests"

COUNTER_PROTO = """
syntax = "proto3";

package lab.grpctests;

import "google/api/annotations.proto";
import "google/protobuf/empty.proto";
import "spawn/actors/extensions.proto";

message AddRequest {
  string id = 1 [(spawn.actors.actor_id) = true];
  int32 amount = 2;
}
message GetRequest { string id = 1 [(spawn.actors.actor_id) = true]; }
message Total { int32 value = 1; }

message HelloRequest { string name = 1; }
message HelloReply { string greeting = 1; }

message Row { string name = 1; }
message SearchRequest { string name = 1; }
message SearchReply { repeated Row rows = 1; }

service Counter {
  option (spawn.actors.actor) = {
    kind: UNNAMED
    stateful: true
    state_type: ".lab.grpctests.Total"
    deactivate_timeout: 60000
    snapshot_interval: 5000
  };
  rpc Add(AddRequest) returns (Total) {
    option (google.api.http) = { post: "/v1/counters/{id}/add" body: "*" };
  }
  rpc Get(GetRequest) returns (Total) {
    option (google.api.http) = { get: "/v1/counters/{id}" };
  }
  rpc Fail(AddRequest) returns (Total) {
    option (google.api.http) = { post: "/v1/counters/{id}/fail" body: "*" };
  }
  rpc Notify(AddRequest) returns (stream google.protobuf.Empty);
  rpc Feed(stream AddRequest) returns (google.protobuf.Empty);
  rpc Chat(stream AddRequest) returns (stream Total);
}

service Greeter {
  option (spawn.actors.actor) = { kind: NAMED stateful: false };
  rpc Hello(HelloRequest) returns (HelloReply) {
    option (google.api.http) = { get: "/v1/hello/{name}" };
  }
  rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty);
}

service Ghost {
  option (spawn.actors.actor) = { kind: NAMED };
  rpc Boo(google.protobuf.Empty) returns (google.protobuf.Empty) {
    option (google.api.http) = { get: "/v1/ghost" };
  }
}

service Catalog {
  option (spawn.actors.actor) = {
    kind: PROJECTION
    state_type: ".lab.grpctests.Row"
    subjects: { actor: "Counter" source_action: "Add" action: "Record" }
  };
  rpc Record(Row) returns (google.protobuf.Empty);
  rpc Search(SearchRequest) returns (SearchReply) {
    option (spawn.actors.view) = {
      query: "SELECT * FROM catalog WHERE name = :name"
      map_to: "rows"
    };
  }
}
"""


@pytest.fixture(scope="session")
def proto() -> CompiledProto:
    """The proto compiled into the process registry, as ``%%proto`` would."""
    return compile_proto(COUNTER_PROTO, PROTO_NAME)


def counter_handlers(proto: CompiledProto) -> dict[str, Callable[..., Any]]:
    """Counter's rpcs: Add changes the state; Fail raises; the streams reuse Add."""

    def add(ctx: sl.Context, request: Any) -> sl.Value:
        total = proto.Total(value=ctx.state.value + request.amount)
        return sl.Value(total, state=total)

    def get(ctx: sl.Context, request: Any) -> Any:
        return ctx.state

    def fail(ctx: sl.Context, request: Any) -> Any:
        raise ValueError(f"cannot add {request.amount} today")

    return {"Add": add, "Get": get, "Fail": fail, "Notify": add, "Feed": add, "Chat": add}


def register_all(system: sl.ActorSystem, proto: CompiledProto) -> None:
    """Counter (UNNAMED template), Greeter (NAMED); Ghost stays unregistered."""
    system.register(proto.actor("Counter", handlers=counter_handlers(proto)))
    greeter = proto.actor("Greeter")

    @greeter.rpc
    def Hello(ctx: sl.Context, request: Any) -> Any:  # named like the rpc
        return proto.HelloReply(greeting=f"hello {request.name}")

    @greeter.rpc
    def Ping(ctx: sl.Context, request: Any) -> None:
        return None

    system.register(greeter)


@pytest.fixture
def system(proto: CompiledProto) -> Iterator[sl.ActorSystem]:
    with sl.ActorSystem("grpc-test", store="memory://", timeout=10) as s:
        register_all(s, proto)
        yield s


@pytest.fixture
def server(system: sl.ActorSystem) -> Iterator[GrpcServer]:
    with serve_grpc(system) as s:
        yield s


@pytest.fixture
def channel(server: GrpcServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def unary(channel: grpc.Channel, path: str) -> Callable[..., bytes]:
    """A raw-bytes unary callable (no stubs), with a bounded deadline."""
    call = channel.unary_unary(path)
    return lambda data: call(data, timeout=10)


def rpc_error(fn: Callable[[], object]) -> grpc.RpcError:
    """The RpcError ``fn`` raises (fails the test if it returns)."""
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Bounded polling for effects that happen on other threads."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the bound")
        time.sleep(0.005)
