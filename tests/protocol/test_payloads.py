"""Packing values into google.protobuf.Any and back (spawn_lab.protocol.payloads)."""

from __future__ import annotations

import enum
import json
import math
import pickle

import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message

import spawn_lab.protocol as protocol
from spawn_lab.core.errors import PayloadError
from spawn_lab.protocol import payloads
from spawn_lab.protocol.payloads import (
    JSON_TYPE_URL,
    LEGACY_JSON_TYPE_URL,
    decode,
    encode,
    pack,
    type_url_of,
    unpack,
)
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2

JSON_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -(2**70),
    1.5,
    -0.0,
    "",
    "héllo ☃ \U0001f600",
    "x" * 300,  # a length that needs a two-byte varint
    [],
    {},
    [1, "two", 3.0, None, [True], {"k": []}],
    {"amount": 3, "items": [1, 2, {"deep": {"deeper": ["x"]}}], "none": None},
]


class Colour(enum.IntEnum):
    RED = 1


def _spec_bytes(value: object) -> bytes:
    """The bytes the brief specifies, built with the generated class."""
    content = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return protocol_pb2.JSONType(content=content).SerializeToString()


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_pack_json_round_trips(value: object) -> None:
    packed = pack(value)
    assert packed.type_url == JSON_TYPE_URL == "type.googleapis.com/spawn.JSONType"
    assert packed.value == _spec_bytes(value)
    assert unpack(packed) == value


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_encode_json_round_trips(value: object) -> None:
    type_url, data = encode(value)
    assert (type_url, data) == (JSON_TYPE_URL, _spec_bytes(value))
    assert type_url_of(value) == JSON_TYPE_URL
    assert decode(type_url, data) == value


def test_pack_json_is_a_json_type_message() -> None:
    packed = pack({"amount": 3})
    message = protocol_pb2.JSONType()
    assert packed.Unpack(message)
    assert message.content == '{"amount":3}'


def test_pack_tuple_and_subclasses_become_plain_json() -> None:
    assert unpack(pack((1, (2, 3)))) == [1, [2, 3]]
    assert unpack(pack({"c": Colour.RED})) == {"c": 1}


def test_unpack_legacy_json_type_decodes() -> None:
    """spawn-node-sdk 1.2.0 sends the old package name with the same message shape."""
    legacy = any_pb2.Any(type_url=LEGACY_JSON_TYPE_URL, value=_spec_bytes({"amount": 2}))
    assert unpack(legacy) == {"amount": 2}
    assert decode(LEGACY_JSON_TYPE_URL, legacy.value) == {"amount": 2}


@pytest.mark.parametrize(
    "message",
    [
        timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5),
        actor_pb2.ActorId(name="joe", system="spawn-system", parent="mike"),
        protocol_pb2.InvocationRequest(action_name="add", noop=protocol_pb2.Noop()),
    ],
    ids=lambda m: m.DESCRIPTOR.full_name,
)
def test_pack_message_round_trips(message: Message) -> None:
    url = f"type.googleapis.com/{message.DESCRIPTOR.full_name}"
    packed = pack(message)
    assert packed.type_url == url
    assert packed.value == message.SerializeToString()
    back = unpack(packed)
    assert type(back) is type(message)
    assert back == message
    assert type_url_of(message) == url
    assert encode(message) == (url, message.SerializeToString())
    assert decode(url, message.SerializeToString()) == message


def test_pack_json_type_message_is_a_json_value() -> None:
    """A JSONType message and the value it holds are the same bytes on the wire."""
    message = protocol_pb2.JSONType(content='{"a":1}')
    assert pack(message) == pack({"a": 1})
    assert type_url_of(message) == JSON_TYPE_URL
    assert unpack(pack(message)) == {"a": 1}


def test_unpacked_message_pickles() -> None:
    """Generated classes carry an importable __module__ (the generator rewrites it)."""
    actor_id = unpack(pack(actor_pb2.ActorId(name="joe")))
    assert type(actor_id).__module__ == "spawn_lab.protocol.spawn.actors.actor_pb2"
    assert pickle.loads(pickle.dumps(actor_id)) == actor_id


def test_pack_any_passes_through() -> None:
    original = any_pb2.Any(type_url="type.googleapis.com/domain.State", value=b"\n\x06python")
    assert pack(original) is original
    assert type_url_of(original) == "type.googleapis.com/domain.State"
    assert encode(original) == ("type.googleapis.com/domain.State", b"\n\x06python")


def test_unpack_unknown_type_passes_through() -> None:
    original = any_pb2.Any(type_url="type.googleapis.com/domain.State", value=b"\n\x06python")
    assert unpack(original) is original
    decoded = decode(original.type_url, original.value)
    assert isinstance(decoded, any_pb2.Any)
    assert decoded == original


def test_unpack_type_url_with_other_prefix_finds_class() -> None:
    other = any_pb2.Any(type_url="example.com/x/spawn.actors.ActorId", value=b"\n\x03joe")
    assert unpack(other) == actor_pb2.ActorId(name="joe")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"items": [1, 2, {3}]},
            "payload['items'][2] is a set, which is neither a protobuf message nor JSON-able",
        ),
        (object(), "payload is an object, which is neither a protobuf message nor JSON-able"),
        ([b"raw"], "payload[0] is a bytes, which is neither a protobuf message nor JSON-able"),
        ({"a": {1: "x"}}, "payload['a'] has the key 1, an int; JSON object keys must be str"),
        ({"when": math.nan}, "payload['when'] is nan, which JSON cannot carry"),
        ([1, [2, -math.inf]], "payload[1][1] is -inf, which JSON cannot carry"),
        (math.inf, "payload is inf, which JSON cannot carry"),
    ],
)
def test_pack_bad_value_names_path_and_type(value: object, message: str) -> None:
    with pytest.raises(PayloadError) as info:
        pack(value)
    assert str(info.value) == message
    with pytest.raises(PayloadError):
        encode(value)
    with pytest.raises(PayloadError):
        type_url_of(value)


def test_pack_cycle_is_refused() -> None:
    loop: dict[str, object] = {}
    loop["self"] = [loop]
    with pytest.raises(PayloadError, match=r"payload\['self'\]\[0\] contains itself"):
        pack(loop)


def test_pack_shared_subvalue_is_not_a_cycle() -> None:
    shared = [1]
    assert unpack(pack({"a": shared, "b": shared})) == {"a": [1], "b": [1]}


def test_pack_too_deep_is_refused() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested too deeply"):
        pack(deep)


def test_unpack_corrupt_message_names_type_url() -> None:
    corrupt = any_pb2.Any(type_url="type.googleapis.com/spawn.actors.ActorId", value=b"\n\x09ab")
    with pytest.raises(PayloadError, match=r"'type\.googleapis\.com/spawn\.actors\.ActorId'"):
        unpack(corrupt)


def test_unpack_corrupt_json_type_names_type_url() -> None:
    corrupt = any_pb2.Any(type_url=JSON_TYPE_URL, value=b"\n\x09ab")
    with pytest.raises(PayloadError, match=r"'type\.googleapis\.com/spawn\.JSONType'"):
        unpack(corrupt)


def test_unpack_invalid_json_names_type_url() -> None:
    broken = pack("x")
    broken.value = protocol_pb2.JSONType(content="{not json").SerializeToString()
    with pytest.raises(PayloadError, match=r"'type\.googleapis\.com/spawn\.JSONType'.*not json"):
        unpack(broken)


def test_unpack_caches_message_classes() -> None:
    url = "type.googleapis.com/google.protobuf.Timestamp"
    unpack(pack(timestamp_pb2.Timestamp(seconds=1)))
    assert payloads._classes[url] is timestamp_pb2.Timestamp


def test_protocol_exports_payload_api() -> None:
    assert isinstance(protocol.__all__, tuple)
    assert set(protocol.__all__) <= set(dir(protocol))
    assert isinstance(payloads.__all__, tuple)
    assert set(payloads.__all__) <= set(dir(payloads))
