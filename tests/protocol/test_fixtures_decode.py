"""Golden bytes from a real SDK (spawn-node-sdk 1.2.0) decode with our generated classes.

The fixtures live next to the repository, in ../shared/fixtures (CI clones the repo beside it).
Their ``*.current.txt`` files are the text form of each request decoded with Spawn's current
protos; our decoding must print exactly the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest
from google.protobuf import text_format
from google.protobuf.message import Message

from spawn_lab.protocol.payloads import LEGACY_JSON_TYPE_URL, unpack
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2

M = TypeVar("M", bound=Message)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
NODE_SDK = FIXTURES / "spawn-node-sdk"

# Every current-protocol request the node SDK sent, with the message it must decode as.
NODE_REQUESTS: dict[str, type[Message]] = {
    "proxy-register.bin": protocol_pb2.RegistrationRequest,
    "proxy-invoke-counter-add.bin": protocol_pb2.InvocationRequest,
    "proxy-invoke-counter-add-async.bin": protocol_pb2.InvocationRequest,
    "proxy-invoke-u-node-b-add.bin": protocol_pb2.InvocationRequest,
    "proxy-spawn-u-node-a.bin": protocol_pb2.SpawnRequest,
}


def _fixture(name: str) -> Path:
    """The path of a node-sdk fixture; fails (never skips) when the fixtures are missing."""
    path = NODE_SDK / name
    if not path.is_file():
        pytest.fail(
            f"golden fixture {path} is missing: the shared fixtures folder must sit next to the "
            f"repository ({FIXTURES}); clone or copy it there"
        )
    return path


def _decode(name: str, cls: type[M]) -> M:
    return cls.FromString(_fixture(name).read_bytes())


@pytest.mark.parametrize(("name", "cls"), NODE_REQUESTS.items(), ids=list(NODE_REQUESTS))
def test_node_fixture_decodes_like_current_spawn(name: str, cls: type[Message]) -> None:
    message = _decode(name, cls)
    expected = _fixture(name.removesuffix(".bin") + ".current.txt").read_text(encoding="utf-8")
    header, _, body = expected.partition("\n")
    assert header.endswith(f"decoded as current {cls.DESCRIPTOR.full_name}: OK"), header
    assert text_format.MessageToString(message) == body


def test_node_fixture_registration_declares_actors() -> None:
    request = _decode("proxy-register.bin", protocol_pb2.RegistrationRequest)
    assert request.service_info.service_name == "nodejs_sdk"
    assert request.actor_system.name == "spawn-system"
    actors = request.actor_system.registry.actors
    assert sorted(actors) == ["counter", "unnamed_tpl"]

    counter = actors["counter"]
    assert counter.settings.kind == actor_pb2.NAMED
    assert counter.settings.stateful
    assert [action.name for action in counter.actions] == ["add"]
    assert [(t.action.name, t.seconds) for t in counter.timer_actions] == [("tick", 500)]
    assert [(c.topic, c.action) for c in counter.metadata.channel_group] == [
        ("harness.news", "receive")
    ]
    assert counter.state.state.type_url == LEGACY_JSON_TYPE_URL
    assert unpack(counter.state.state) == {}

    template = actors["unnamed_tpl"]
    assert template.settings.kind == actor_pb2.UNNAMED
    assert template.id.parent == "unnamed_tpl"


@pytest.mark.parametrize(
    ("name", "actor", "amount", "is_async", "register_ref"),
    [
        ("proxy-invoke-counter-add.bin", "counter", 2, False, ""),
        ("proxy-invoke-counter-add-async.bin", "counter", 3, True, ""),
        ("proxy-invoke-u-node-b-add.bin", "u-node-b", 1, False, "unnamed_tpl"),
    ],
)
def test_node_fixture_invocation_targets_action(
    name: str, actor: str, amount: int, is_async: bool, register_ref: str
) -> None:
    request = _decode(name, protocol_pb2.InvocationRequest)
    assert request.system.name == "spawn-system"
    assert (request.actor.id.name, request.actor.id.system) == (actor, "spawn-system")
    assert request.action_name == "add"
    assert request.WhichOneof("payload") == "value"
    assert unpack(request.value) == {"amount": amount}
    assert getattr(request, "async") is is_async  # a Python keyword, hence getattr
    assert request.register_ref == register_ref


def test_node_fixture_spawn_names_instance_and_parent() -> None:
    request = _decode("proxy-spawn-u-node-a.bin", protocol_pb2.SpawnRequest)
    assert [(a.name, a.system, a.parent) for a in request.actors] == [
        ("u-node-a", "spawn-system", "unnamed_tpl")
    ]
