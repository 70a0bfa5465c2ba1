"""Older SDK protocol forms, detected from the decode result and ServiceInfo (Appendix B)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.message import Message

from spawn_lab.core.errors import ProtocolError, RegistrationError
from spawn_lab.core.model import Kind
from spawn_lab.protocol import codec, legacy, payloads
from spawn_lab.protocol.payloads import JSON_TYPE_URL, LEGACY_JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import protocol_pb2

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def _fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"golden fixture {path} is missing")
    return path.read_bytes()


def _old_form(library: str, actors: dict[str, tuple[int, str, str]]) -> bytes:
    """A registration in the old form: ``name -> (kind number, id.parent, channel string)``."""
    old: Message = legacy._old_registration_class()()
    old.service_info.service_name = library  # type: ignore[attr-defined]
    old.actor_system.name = "spawn-system"  # type: ignore[attr-defined]
    for name, (kind, parent, channel) in actors.items():
        actor = old.actor_system.registry.actors[name]  # type: ignore[attr-defined]
        actor.id.name, actor.id.system, actor.id.parent = name, "spawn-system", parent
        actor.settings.kind = kind
        actor.settings.stateful = True
        actor.actions.add(name="act")
        actor.metadata.channel_group = channel
    return old.SerializeToString()


def _kinds(request: protocol_pb2.RegistrationRequest) -> dict[str, Kind]:
    return {k: Kind(a.settings.kind) for k, a in request.actor_system.registry.actors.items()}


def _channels(request: protocol_pb2.RegistrationRequest) -> dict[str, list[tuple[str, str]]]:
    return {
        k: [(c.topic, c.action) for c in a.metadata.channel_group]
        for k, a in request.actor_system.registry.actors.items()
    }


def test_python_sdk_registration_is_the_old_form_with_todays_kinds() -> None:
    """spawn-python-sdk: string channel group (L1), today's Kind numbers, old JSON type URL (L3)
    and the old Broadcast action name (L4)."""
    request, profile = legacy.decode_registration(_fixture("spawn-python-sdk/proxy-register.bin"))
    assert (profile.library, profile.version) == ("spawn-python-sdk", "0.1.0")
    assert profile.rules == (
        "L1 string channel_group",
        "L3 eigr.functions.protocol.JSONType",
        "L4 Broadcast action name",
    )
    assert profile.json_url == LEGACY_JSON_TYPE_URL and profile.broadcast_action
    assert _kinds(request) == {"joe": Kind.NAMED, "mike": Kind.UNNAMED}
    assert _channels(request) == {"joe": [("test", "receive")], "mike": []}
    assert request.actor_system.registry.actors["joe"].timer_actions[0].seconds == 1000


def test_node_sdk_1_2_registration_is_todays_form() -> None:
    """spawn-node-sdk 1.2.0 decodes with today's protos; its template (kind 2 whose parent is
    itself) shows today's Kind numbers, so L2 does not apply; its JSON is the old type URL."""
    request, profile = legacy.decode_registration(_fixture("spawn-node-sdk/proxy-register.bin"))
    assert profile.library == "nodejs_sdk"
    assert "L1 string channel_group" not in profile.rules
    assert "L2 old Kind numbers" not in profile.rules
    assert profile.json_url == LEGACY_JSON_TYPE_URL
    assert _kinds(request) == {"counter": Kind.NAMED, "unnamed_tpl": Kind.UNNAMED}
    assert _channels(request)["counter"] == [("harness.news", "receive")]


def test_old_node_sdk_kinds_and_string_channels_are_mapped() -> None:
    """Appendix B old generation: SINGLETON=2 (no parent) is NAMED, ABSTRACT=1 (parent == its
    own name) is UNNAMED, and the string channel group becomes a Channel (L1, L2)."""
    body = _old_form("nodejs_sdk", {"single": (2, "", "news"), "abstract": (1, "abstract", "")})
    request, profile = legacy.decode_registration(body)
    assert profile.rules[:2] == ("L1 string channel_group", "L2 old Kind numbers")
    assert _kinds(request) == {"single": Kind.NAMED, "abstract": Kind.UNNAMED}
    assert _channels(request) == {"single": [("news", "receive")], "abstract": []}


def test_old_node_sdk_without_channels_is_caught_by_its_kinds() -> None:
    """No string to go by: kind 2 with no parent, from nodejs_sdk, is the old SINGLETON."""
    body = _old_form("nodejs_sdk", {"single": (2, "", "")})
    request, profile = legacy.decode_registration(body)
    assert "L2 old Kind numbers" in profile.rules
    assert _kinds(request) == {"single": Kind.NAMED}


def test_same_kind_values_from_another_sdk_are_todays() -> None:
    """The Kind evidence counts only for nodejs_sdk: one value alone decides nothing."""
    body = _old_form("some-other-sdk", {"template": (2, "", "")})
    request, profile = legacy.decode_registration(body)
    assert profile == legacy.SdkProfile("some-other-sdk", "", JSON_TYPE_URL, False, ())
    assert _kinds(request) == {"template": Kind.UNNAMED}


def test_contradicting_node_evidence_is_refused() -> None:
    body = _old_form("nodejs_sdk", {"new_tpl": (2, "new_tpl", ""), "old_single": (2, "", "")})
    with pytest.raises(
        RegistrationError, match=r"mixes old Kind numbering \(actors \['old_single'\]"
    ):
        legacy.decode_registration(body)


def test_string_that_parses_as_a_channel_is_still_recognised() -> None:
    """ "hi" reads as a Channel with no topic and an unknown field; the old form explains the
    bytes better, so it wins (L1), whoever sent them."""
    body = _old_form("unknown", {"a": (1, "", "hi")})
    protocol_pb2.RegistrationRequest.FromString(body)  # decodes with today's protos too...
    request, profile = legacy.decode_registration(body)
    assert profile.rules[0] == "L1 string channel_group"
    assert _channels(request) == {"a": [("hi", "receive")]}


def test_todays_registration_from_spawn_lab_has_no_rules() -> None:
    from spawn_lab import Actor

    request = codec.registration_request(
        "spawn-system",
        [Actor("a").definition()],
        protocol_pb2.ServiceInfo(service_name="spawn-lab", support_library_name="spawn-lab"),
    )
    decoded, profile = legacy.decode_registration(request.SerializeToString())
    assert decoded == request
    assert profile == legacy.SdkProfile("spawn-lab", "", JSON_TYPE_URL, False, ())
    assert not profile.legacy


def test_garbage_registration_names_both_forms() -> None:
    with pytest.raises(
        ProtocolError, match=r"does not decode as spawn\.RegistrationRequest .* nor in the old"
    ):
        legacy.decode_registration(b"\xff\xff\xff\xff")


def test_broadcast_action_reads_the_old_field_2() -> None:
    broadcast = protocol_pb2.Broadcast(channel_group="test", value=payloads.pack(1))
    assert legacy.broadcast_action(broadcast) == ""
    old = protocol_pb2.Broadcast.FromString(
        broadcast.SerializeToString() + codec.len_field(b"\x12", b"onNews")
    )
    assert old.channel_group == "test"
    assert legacy.broadcast_action(old) == "onNews"
