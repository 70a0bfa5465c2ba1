"""Core model values to Spawn protobuf and back (spawn_lab.protocol.codec)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import any_pb2

import spawn_lab as sl
from spawn_lab.core.errors import PayloadError, ProtocolError, RegistrationError
from spawn_lab.core.model import ActorSettings, HandlerKind, Kind, ProjectionSubject
from spawn_lab.protocol import codec, payloads
from spawn_lab.protocol.payloads import JSON_TYPE_URL, LEGACY_JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
WALL_MS = 1_767_225_600_000.0


def _fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"golden fixture {path} is missing")
    return path.read_bytes()


def test_actor_id_round_trips_with_parent() -> None:
    actor_id = sl.ActorId("n1", "sys", "tmpl")
    assert codec.actor_id_from_pb(codec.actor_id_to_pb(actor_id)) == actor_id


def test_actor_id_without_name_names_the_path() -> None:
    with pytest.raises(ProtocolError, match=r"^caller\.name is empty$"):
        codec.actor_id_from_pb(actor_pb2.ActorId(system="s"), "caller")


@pytest.mark.parametrize(
    "settings",
    [
        ActorSettings(),
        ActorSettings(kind=Kind.UNNAMED, snapshot_interval_ms=None, deactivate_timeout_ms=0),
        ActorSettings(kind=Kind.POOLED, stateful=False, min_pool_size=2, max_pool_size=5),
        ActorSettings(
            kind=Kind.PROJECTION,
            subjects=(ProjectionSubject("src", "changed", "apply", 1_700_000_000_123),),
            strict_events_ordering=True,
            events_retention_ms=None,
            state_type="shop.Order",
        ),
        ActorSettings(sourceable=True, events_retention_ms=5_000),
    ],
    ids=["defaults", "unnamed-no-snapshot", "pooled", "projection", "sourceable"],
)
def test_settings_round_trip(settings: ActorSettings) -> None:
    assert codec.settings_from_pb(codec.settings_to_pb(settings), "s") == settings


def test_settings_absent_strategies_read_as_spawn_defaults() -> None:
    """§6.1: no snapshot strategy means no periodic snapshots; no deactivation strategy is
    sent as the 10 s default (intended D6); no retention strategy means one day (§8.1)."""
    settings = codec.settings_from_pb(actor_pb2.ActorSettings(kind=actor_pb2.NAMED), "s")
    assert settings.snapshot_interval_ms is None
    assert settings.deactivate_timeout_ms is None
    assert settings.events_retention_ms == codec.DEFAULT_RETENTION_MS
    pb = codec.settings_to_pb(ActorSettings(deactivate_timeout_ms=None))
    assert pb.deactivation_strategy.timeout.timeout == codec.DEFAULT_DEACTIVATE_MS


def test_settings_unknown_kind_names_the_field() -> None:
    with pytest.raises(
        RegistrationError, match=r"^actors\['x'\]\.settings\.kind: unknown Kind value 9$"
    ):
        codec.settings_from_pb(actor_pb2.ActorSettings(kind=9), "actors['x'].settings")  # type: ignore[arg-type]


def test_pooled_stateful_registration_becomes_stateless() -> None:
    pb = actor_pb2.ActorSettings(kind=actor_pb2.POOLED, stateful=True)
    assert codec.settings_from_pb(pb, "s").stateful is False


def test_definition_to_pb_always_has_state_and_metadata() -> None:
    """Checklist K66: ActorState and Metadata present even when empty; a template names
    itself as parent, as the SDKs do."""
    bare = sl.Actor("bare", kind=Kind.UNNAMED, stateful=False).definition()
    actor = codec.definition_to_pb(bare, "sys")
    assert actor.HasField("state") and actor.HasField("metadata")
    assert not actor.state.HasField("state")
    assert (actor.id.name, actor.id.system, actor.id.parent) == ("bare", "sys", "bare")


def test_definition_round_trips_through_pb() -> None:
    counter = sl.Actor(
        "counter", state={"n": 0}, tags={"a": "b"}, channels=[sl.Channel("news", "onNews")]
    )

    @counter.action
    def onNews(ctx: sl.Context, payload: object) -> None:
        return None

    @counter.timer(250)
    def tick(ctx: sl.Context, payload: object) -> None:
        return None

    original = counter.definition()
    pb = codec.definition_to_pb(original, "sys")
    assert pb.timer_actions[0].seconds == 250  # the field says seconds, the proxy reads ms (§7)
    host = object()
    back = codec.definition_from_pb(pb, "actors['counter']", host=host)
    assert back.name == "counter" and back.remote and back.host is host
    assert back.settings == original.settings
    assert back.actions == ("onNews", "tick")
    assert back.timers == original.timers
    assert back.channels == original.channels
    assert (back.initial_state, dict(back.initial_tags)) == ({"n": 0}, {"a": "b"})
    assert all(kind is HandlerKind.ASYNC for kind in back.action_kinds.values())


def test_definition_from_pb_errors_name_the_path() -> None:
    actor = actor_pb2.Actor(id=actor_pb2.ActorId(name="x", system="s"))
    with pytest.raises(RegistrationError, match=r"^actors\['x'\]\.settings is missing$"):
        codec.definition_from_pb(actor, "actors['x']", host=None)
    actor.settings.kind = actor_pb2.NAMED
    actor.metadata.channel_group.add(topic="")
    with pytest.raises(RegistrationError, match=r"^actors\['x'\]: invalid topic name ''"):
        codec.definition_from_pb(actor, "actors['x']", host=None)


def test_node_sdk_registration_decodes_into_definitions() -> None:
    """spawn-node-sdk 1.2.0's registration: JSON state under the old type URL, 500 ms timer."""
    request = protocol_pb2.RegistrationRequest.FromString(
        _fixture("spawn-node-sdk/proxy-register.bin")
    )
    counter = codec.definition_from_pb(
        request.actor_system.registry.actors["counter"], "actors['counter']", host=None
    )
    assert counter.settings.kind is Kind.NAMED
    assert counter.settings.snapshot_interval_ms == 3000
    assert counter.initial_state == {}
    assert counter.timers == (sl.core.model.TimerAction("tick", 500),)
    assert counter.channels == (sl.Channel("harness.news", "receive"),)


def test_payload_oneof_reads_value_noop_and_unset() -> None:
    message = protocol_pb2.InvocationRequest()
    assert codec.payload_of(message, "r") is sl.NOOP
    codec.set_payload(message, sl.NOOP)
    assert message.WhichOneof("payload") == "noop"
    assert codec.payload_of(message, "r") is sl.NOOP
    codec.set_payload(message, {"a": [1]})
    assert codec.payload_of(message, "r") == {"a": [1]}


def test_payload_errors_name_the_path() -> None:
    message = protocol_pb2.InvocationRequest(
        value=any_pb2.Any(type_url=JSON_TYPE_URL, value=b"\n\x01{")
    )
    with pytest.raises(PayloadError, match=r"^InvocationRequest\.value: payload of type"):
        codec.payload_of(message, "InvocationRequest")


def test_pack_value_json_url_applies_to_json_only() -> None:
    assert codec.pack_value([1], LEGACY_JSON_TYPE_URL).type_url == LEGACY_JSON_TYPE_URL
    foreign = any_pb2.Any(type_url=JSON_TYPE_URL, value=b"\n\x011")
    assert codec.pack_value(foreign, LEGACY_JSON_TYPE_URL) is foreign  # passed through untouched
    assert foreign.type_url == JSON_TYPE_URL
    message = actor_pb2.ActorId(name="x")
    assert codec.pack_value(message, LEGACY_JSON_TYPE_URL).type_url.endswith("spawn.actors.ActorId")


def test_encode_any_matches_protobuf_serialization() -> None:
    for value in (1, "x" * 300, {"a": None}, actor_pb2.ActorId(name="x")):
        for url in (JSON_TYPE_URL, LEGACY_JSON_TYPE_URL):
            assert codec.encode_any(value, url) == codec.pack_value(value, url).SerializeToString()


def test_value_from_response_applies_section_4_6() -> None:
    """State set replaces, tags replace, reply and checkpoint carried (§4.6)."""
    response = protocol_pb2.ActorInvocationResponse(checkpoint=True)
    response.updated_context.state.CopyFrom(payloads.pack({"n": 2}))
    response.updated_context.tags["t"] = "1"
    codec.set_payload(response, "done")
    value = codec.value_from_response(response, wall_ms=WALL_MS)
    assert (value.state, dict(value.tags or {}), value.reply, value.checkpoint) == (
        {"n": 2},
        {"t": "1"},
        "done",
        True,
    )


def test_value_from_response_unset_state_and_empty_tags_change_nothing() -> None:
    """C21 and intended D8: no state keeps the state, no tags keeps the tags."""
    response = protocol_pb2.ActorInvocationResponse()
    response.updated_context.SetInParent()
    value = codec.value_from_response(response, wall_ms=WALL_MS)
    assert not value.changes_state
    assert value.tags is None
    assert value.reply is sl.NOOP


def test_value_from_response_without_context_names_the_field() -> None:
    with pytest.raises(
        ProtocolError, match=r"^ActorInvocationResponse\.updated_context is missing$"
    ):
        codec.value_from_response(protocol_pb2.ActorInvocationResponse(), wall_ms=WALL_MS)


def test_workflow_round_trips_effects_broadcast_and_routing() -> None:
    value = sl.Value(
        reply=1,
        effects=(
            sl.SideEffect(
                "b", "act", {"x": 1}, metadata={"m": "1"}, register_ref="t", delay_ms=250
            ),
        ),
        broadcast=sl.Broadcast("news", "hi"),
        pipe=sl.Pipe("c", "next", register_ref="tmpl"),
    )
    source = sl.ActorId("a", "sys")
    response = codec.response_from_value(value, source, None, {}, wall_ms=WALL_MS)
    request = response.workflow.effects[0].request
    assert getattr(request, "async") and request.caller == actor_pb2.ActorId(name="a", system="sys")
    assert request.scheduled_to == int(WALL_MS) + 250
    back = codec.value_from_response(response, wall_ms=WALL_MS)
    assert back.effects == (sl.SideEffect("b", "act", {"x": 1}, {"m": "1"}, "t", 250, "sys"),)
    assert back.broadcast == sl.Broadcast("news", "hi")
    assert back.pipe == sl.Pipe("c", "next", "tmpl")
    forward = codec.response_from_value(
        sl.Value(forward=sl.Forward("d", "go")), source, None, {}, wall_ms=WALL_MS
    )
    assert codec.value_from_response(forward, wall_ms=WALL_MS).forward == sl.Forward("d", "go")


def test_workflow_errors_name_the_path() -> None:
    response = protocol_pb2.ActorInvocationResponse()
    response.updated_context.SetInParent()
    response.workflow.effects.add().request.action_name = "x"
    with pytest.raises(
        ProtocolError, match=r"workflow\.effects\[0\]\.request\.actor\.id\.name is empty"
    ):
        codec.value_from_response(response, wall_ms=WALL_MS)
    response.ClearField("workflow")
    response.workflow.pipe.actor = "c"
    with pytest.raises(ProtocolError, match=r"workflow\.pipe needs both actor and action_name"):
        codec.value_from_response(response, wall_ms=WALL_MS)


def test_response_from_value_echoes_context_when_unchanged() -> None:
    """Checklist K63: updated_context always set; state and tags echoed when left alone."""
    current = payloads.pack({"n": 1})
    response = codec.response_from_value(
        sl.Value(reply=2), sl.ActorId("a", "s"), current, {"t": "v"}, wall_ms=WALL_MS
    )
    assert response.HasField("updated_context")
    assert response.updated_context.state == current
    assert dict(response.updated_context.tags) == {"t": "v"}
    assert (response.actor_name, response.actor_system) == ("a", "s")
    assert not response.HasField("workflow")


def test_python_sdk_answer_decodes_into_a_value() -> None:
    """The real SDK's setLanguage answer: new state and reply as opaque Anys (no tags: kept)."""
    response = protocol_pb2.ActorInvocationResponse.FromString(
        _fixture("spawn-python-sdk/uf-joe-setLanguage-response.bin")
    )
    value = codec.value_from_response(response, wall_ms=WALL_MS)
    assert value.state.type_url == "type.googleapis.com/domain.State"  # type: ignore[attr-defined]
    assert value.reply.value == b"\n\nok: erlang"  # type: ignore[attr-defined]
    assert value.tags is None


def test_registration_request_uses_the_system_and_service_info() -> None:
    info = protocol_pb2.ServiceInfo(service_name="spawn-lab")
    request = codec.registration_request("sys", [sl.Actor("a").definition()], info)
    assert request.actor_system.name == "sys"
    assert list(request.actor_system.registry.actors) == ["a"]
    assert request.service_info == info
