"""Part 2: services with the (spawn.actors.actor) option become actors; binding is checked."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

import spawn_lab as sl
from spawn_lab.core.model import HandlerKind, Kind, ProjectionSubject
from spawn_lab.protobuf import CompiledProto, ProtoRegistry, compile_proto

from .conftest import counter_handlers

OPTIONS_PROTO = textwrap.dedent(
    """
    syntax = "proto3";
    package lab.options;
    import "spawn/actors/extensions.proto";
    message State { int32 n = 1; }
    message Fact { string id = 1 [(spawn.actors.actor_id) = true]; }
    service Source {
      option (spawn.actors.actor) = {
        kind: NAMED stateful: true state_type: ".lab.options.State"
        deactivate_timeout: 30000 snapshot_interval: 1500
        sourceable: true strict_events_ordering: true
        events_retention_strategy: { duration_ms: 3600000 }
      };
      rpc Emit(Fact) returns (State);
    }
    service Board {
      option (spawn.actors.actor) = {
        kind: PROJECTION
        events_retention_strategy: { infinite: true }
        subjects: { actor: "Source" source_action: "Emit" action: "Apply" }
      };
      rpc Apply(Fact) returns (State);
    }
    service Pool {
      option (spawn.actors.actor) = { kind: POOLED };
      rpc Work(Fact) returns (State);
    }
    service plain_service { rpc Nothing(Fact) returns (State); }
    """
)


@pytest.fixture(scope="module")
def options() -> CompiledProto:
    return compile_proto(OPTIONS_PROTO, "options.proto", registry=ProtoRegistry())


def _noop(ctx: sl.Context, request: Any) -> None:
    return None


def test_service_actor_maps_actor_opts_to_settings(options: CompiledProto) -> None:
    source = options.actor("Source", handlers={"Emit": _noop})
    settings = source.settings
    assert source.name == "Source" and settings.kind is Kind.NAMED and settings.stateful
    assert settings.state_type == "lab.options.State"
    assert (settings.deactivate_timeout_ms, settings.snapshot_interval_ms) == (30_000, 1_500)
    assert settings.sourceable and settings.strict_events_ordering
    assert settings.events_retention_ms == 3_600_000
    assert source.definition().initial_state == options.State()

    board = options.actor("Board", handlers={"Apply": _noop}).settings
    assert board.kind is Kind.PROJECTION and not board.stateful
    assert board.subjects == (ProjectionSubject("Source", "Emit", "Apply"),)
    assert board.events_retention_ms is None  # infinite
    assert (board.deactivate_timeout_ms, board.snapshot_interval_ms) == (10_000, 2_000)

    pool = options.actor("Pool", handlers={"Work": _noop}).settings
    assert pool.kind is Kind.POOLED and not pool.stateful


def test_service_actor_rpcs_are_actions_with_their_handler_kind(proto: CompiledProto) -> None:
    async def add_later(ctx: sl.Context, request: Any) -> None:
        return None

    handlers = {**counter_handlers(proto), "Add": add_later}
    defn = proto.actor("Counter", handlers=handlers).definition()
    assert defn.name == "Counter" and defn.settings.kind is Kind.UNNAMED
    assert set(defn.actions) == {"Add", "Get", "Fail", "Notify", "Feed", "Chat"}
    assert defn.kind_of("Add") is HandlerKind.ASYNC and defn.kind_of("Get") is HandlerKind.SYNC


def test_service_actor_missing_handler_names_the_rpc(proto: CompiledProto) -> None:
    handlers = counter_handlers(proto)
    del handlers["Fail"], handlers["Chat"]
    with pytest.raises(sl.RegistrationError, match=r"no handler for rpc 'Fail', 'Chat'"):
        proto.actor("Counter", handlers=handlers)


def test_service_actor_handler_for_unknown_rpc_names_it(proto: CompiledProto) -> None:
    handlers = {**counter_handlers(proto), "Substract": _noop}
    with pytest.raises(sl.RegistrationError, match=r"has no rpc 'Substract'.*Add, Get, Fail"):
        proto.actor("Counter", handlers=handlers)


def test_service_actor_decorator_binding_is_checked_at_register(proto: CompiledProto) -> None:
    greeter = proto.actor("Greeter")

    @greeter.rpc
    def Hello(ctx: sl.Context, request: Any) -> None:
        return None

    with pytest.raises(sl.RegistrationError, match=r"has no rpc 'Helo'"):
        greeter.rpc(_noop, name="Helo")
    with sl.ActorSystem("bind-test", store="memory://") as system:
        with pytest.raises(sl.RegistrationError, match=r"no handler for rpc 'Ping'"):
            system.register(greeter)
        greeter.rpc(_noop, name="Ping")
        assert system.register(greeter).name == "Greeter"


def test_service_actor_refuses_a_service_without_the_actor_option(
    options: CompiledProto,
) -> None:
    with pytest.raises(sl.RegistrationError, match=r"'lab.options.plain_service' has no"):
        options.actor("plain_service", handlers={})
    with pytest.raises(sl.RegistrationError, match=r"no service 'Nope'.*Source, Board"):
        options.actor("Nope")


def test_service_actor_view_rpc_takes_no_handler_and_becomes_a_view(
    proto: CompiledProto,
) -> None:
    with pytest.raises(sl.RegistrationError, match=r"rpc 'Search' .* is a view"):
        proto.actor("Catalog", handlers={"Record": _noop, "Search": _noop})
    defn = proto.actor("Catalog", handlers={"Record": _noop}).definition()
    view = defn.views["Search"]
    assert (view.query, view.map_to, view.page_size) == (
        "SELECT * FROM catalog WHERE name = :name",
        "rows",
        10,
    )
    assert view.output_type == "lab.grpctests.SearchReply"


def test_actor_name_is_the_camelized_service_name(options: CompiledProto) -> None:
    assert options.service("plain_service").actor == "PlainService"


def test_registry_settings_for_gives_the_proto_settings_of_an_actor(
    options: CompiledProto,
) -> None:
    registry = ProtoRegistry()
    registry.add(options)
    settings = registry.settings_for("Source")
    assert settings is not None and settings.sourceable and settings.kind is Kind.NAMED
    assert registry.settings_for("PlainService") is None  # not an actor service
    assert registry.settings_for("Unknown") is None
