"""The proxy side against bytes a real spawn-python-sdk sent and answered (../shared/fixtures).

Our proxy's ActorInvocation for the same situation must be the very bytes the SDK was sent, and
the SDK's real answers must apply as §4.6 says. A manual clock keeps joe's 1 s timer still until
the test moves time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google.protobuf import any_pb2

import spawn_lab as sl
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.transports.http import HttpServer

from .conftest import OCTET, SYSTEM, FakeUserFunction, golden, http

STATE_URL = "type.googleapis.com/domain.State"
REQUEST_URL = "type.googleapis.com/domain.Request"


@pytest.fixture
def manual_system() -> Iterator[sl.ActorSystem]:
    with sl.ActorSystem(SYSTEM, store="memory://", clock=sl.ManualClock()) as opened:
        yield opened


def _sdk_answers(inv: protocol_pb2.ActorInvocation) -> tuple[int, str, bytes]:
    """What the real SDK answered: its captured bytes, or state [python] for the first call."""
    if inv.action_name == "tick":
        return 200, OCTET, golden("spawn-python-sdk/uf-joe-timer-tick-response.bin")
    if inv.value.value == b"\n\x06python":
        response = protocol_pb2.ActorInvocationResponse(actor_name="joe", actor_system=SYSTEM)
        response.updated_context.state.CopyFrom(
            any_pb2.Any(type_url=STATE_URL, value=b"\n\x06python")
        )
        response.noop.SetInParent()
        return 200, OCTET, response.SerializeToString()
    return 200, OCTET, golden("spawn-python-sdk/uf-joe-setLanguage-response.bin")


def _register(server: HttpServer) -> None:
    reply = http(
        "POST", server.url + "/api/v1/system", golden("spawn-python-sdk/proxy-register.bin")
    )
    assert reply.status == 200


def test_proxy_sends_the_sdks_golden_invocation_and_applies_its_answer(
    manual_system: sl.ActorSystem,
    proxy_for: Callable[..., HttpServer],
    user_function: Callable[..., FakeUserFunction],
) -> None:
    """Checklist C20 and C21 with real bytes: joe at state [python] invoked with the SDK's own
    sync request sends exactly uf-joe-setLanguage-request.bin, and the SDK's answer gives the
    caller "ok: erlang" and joe the state [python, erlang]."""
    fake = user_function(_sdk_answers)
    server = proxy_for(manual_system, user_function=fake.url)
    _register(server)
    first = protocol_pb2.InvocationRequest.FromString(
        golden("spawn-python-sdk/proxy-invoke-sync.bin")
    )
    first.value.value = b"\n\x06python"
    url = server.url + "/api/v1/system/spawn-system/actors/joe/invoke"
    assert http("POST", url, first.SerializeToString()).status == 200
    reply = http("POST", url, golden("spawn-python-sdk/proxy-invoke-sync.bin"))
    assert fake.raw[1] == golden("spawn-python-sdk/uf-joe-setLanguage-request.bin")
    response = reply.invocation()
    assert response.status.status == protocol_pb2.OK
    assert response.value.type_url == "type.googleapis.com/domain.Reply"
    assert response.value.value == b"\n\nok: erlang"
    state = manual_system.state("joe")
    assert isinstance(state, any_pb2.Any)
    assert (state.type_url, state.value) == (STATE_URL, b"\n\x06python\n\x06erlang")


def test_timer_fires_the_sdks_golden_tick(
    manual_system: sl.ActorSystem,
    proxy_for: Callable[..., HttpServer],
    user_function: Callable[..., FakeUserFunction],
) -> None:
    """Timer actions (§7): joe's tick every 1000 (ms) sends the captured tick request, plus
    caller = joe itself, which spec §7 requires and the capture harness left out."""
    fake = user_function(_sdk_answers)
    server = proxy_for(manual_system, user_function=fake.url)
    _register(server)
    assert manual_system.advance(1.0) >= 1
    (tick,) = fake.calls("tick")
    assert (tick.caller.name, tick.current_context.caller.name) == ("joe", "joe")
    tick.ClearField("caller")
    tick.current_context.ClearField("caller")
    assert tick.SerializeToString() == golden("spawn-python-sdk/uf-joe-timer-tick-request.bin")
    state = manual_system.state("joe")
    assert (state.type_url, state.value) == (STATE_URL, b"")  # type: ignore[attr-defined]


def test_spawned_python_sdk_instance_is_invoked_with_its_parent(
    manual_system: sl.ActorSystem,
    proxy_for: Callable[..., HttpServer],
    user_function: Callable[..., FakeUserFunction],
) -> None:
    """The SDK's SpawnRequest for mike-1 (parent mike), then its invocation of mike-1.hi."""
    fake = user_function(
        lambda inv: (200, OCTET, golden("spawn-python-sdk/uf-joe-timer-tick-response.bin"))
    )
    server = proxy_for(manual_system, user_function=fake.url)
    _register(server)
    spawned = http(
        "POST",
        server.url + "/api/v1/system/spawn-system/actors/spawn",
        golden("spawn-python-sdk/proxy-spawn.bin"),
    )
    assert protocol_pb2.SpawnResponse.FromString(spawned.body).status.message == "Accepted"
    reply = http(
        "POST",
        server.url + "/api/v1/system/spawn-system/actors/mike-1/invoke",
        golden("spawn-python-sdk/proxy-invoke-spawned.bin"),
    )
    assert reply.invocation().status.status == protocol_pb2.OK
    (hi,) = fake.calls("hi")
    assert (hi.actor.name, hi.actor.parent) == ("mike-1", "mike")
    assert hi.value.type_url == REQUEST_URL
