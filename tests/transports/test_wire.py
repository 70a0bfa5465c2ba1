"""The proxy API as bytes in, bytes out (``spawn_lab.transports.wire``), without HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

import spawn_lab as sl
from spawn_lab.core.model import Kind
from spawn_lab.protocol import codec, payloads
from spawn_lab.protocol.payloads import LEGACY_JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2
from spawn_lab.transports import wire

from .conftest import SYSTEM, counter_actor, golden, invocation_request


def _invoke(
    system: sl.ActorSystem, request: protocol_pb2.InvocationRequest
) -> tuple[int, protocol_pb2.InvocationResponse]:
    answer = wire.invoke_bytes(system, request.SerializeToString())
    return answer.http, protocol_pb2.InvocationResponse.FromString(answer)


def _until(condition, limit: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    """Bounded polling (no fixed sleeps): True as soon as ``condition()`` holds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def test_invoke_bytes_sync_answers_value_with_system_and_actor_echoed(
    system: sl.ActorSystem,
) -> None:
    """Checklist A4: OK, the request's system and actor echoed, the action's value."""
    system.register(counter_actor())
    request = invocation_request("counter", "add", 5)
    http, response = _invoke(system, request)
    assert http == 200
    assert response.status.status == protocol_pb2.OK
    assert response.system == request.system
    assert response.actor == request.actor
    assert payloads.unpack(response.value) == 5


def test_invoke_bytes_ok_reply_equals_protobuf_serialization(system: sl.ActorSystem) -> None:
    """The hand-written OK reply is byte for byte what protobuf writes for the same message."""
    system.register(counter_actor())
    request = invocation_request("counter", "add", 7)
    answer = wire.invoke_bytes(system, request.SerializeToString())
    expected = protocol_pb2.InvocationResponse(
        status=protocol_pb2.RequestStatus(status=protocol_pb2.OK),
        system=request.system,
        actor=request.actor,
        value=payloads.pack(7),
    )
    assert bytes(answer) == expected.SerializeToString()
    noop = invocation_request("counter", "echo", sl.NOOP)
    assert protocol_pb2.InvocationResponse.FromString(
        wire.invoke_bytes(system, noop.SerializeToString())
    ).HasField("value")


def test_invoke_bytes_async_answers_without_payload_then_runs(system: sl.ActorSystem) -> None:
    """Checklist A5: async=true gives OK with no payload; the action still runs."""
    system.register(counter_actor())
    request = invocation_request("counter", "add", 3, **{"async": True})
    http, response = _invoke(system, request)
    assert (http, response.status.status) == (200, protocol_pb2.OK)
    assert response.WhichOneof("payload") is None
    assert _until(lambda: system.state("counter") == 3)


def test_invoke_bytes_unknown_action_is_error_at_once(system: sl.ActorSystem) -> None:
    """Checklist A6: upstream's message form, plus the actor's actions, with no retry delay."""
    system.register(counter_actor())
    started = time.monotonic()
    http, response = _invoke(system, invocation_request("counter", "nope", 1))
    assert time.monotonic() - started < 1.0
    assert http == 500
    assert response.status.status == protocol_pb2.ERROR
    assert response.status.message.startswith("Action [nope] not found for Actor [counter]")
    assert "add, echo" in response.status.message


def test_invoke_bytes_unknown_actor_is_actor_not_found_promptly(system: sl.ActorSystem) -> None:
    """Checklist A7 and A12, deliberately diverging: ACTOR_NOT_FOUND at once, not an ERROR
    after the request-timeout retry window (docs/compat.md)."""
    request = invocation_request("ghost", "add", 1, metadata={"request-timeout": "5000"})
    started = time.monotonic()
    http, response = _invoke(system, request)
    assert time.monotonic() - started < 1.0
    assert http == 404
    assert response.status.status == protocol_pb2.ACTOR_NOT_FOUND
    assert response.status.message == f"Actor ghost not found on ActorSystem {SYSTEM}"


def test_invoke_bytes_unknown_system_is_actor_not_found(system: sl.ActorSystem) -> None:
    system.register(counter_actor())
    http, response = _invoke(system, invocation_request("counter", "add", 1, system="elsewhere"))
    assert http == 404
    assert response.status.status == protocol_pb2.ACTOR_NOT_FOUND
    assert "elsewhere" in response.status.message and repr(SYSTEM) in response.status.message


def test_invoke_bytes_undecodable_body_is_400_naming_the_message(system: sl.ActorSystem) -> None:
    answer = wire.invoke_bytes(system, b"\xff\xff\xff not protobuf")
    response = protocol_pb2.InvocationResponse.FromString(answer)
    assert answer.http == 400
    assert response.status.status == protocol_pb2.ERROR
    assert "does not decode as spawn.InvocationRequest" in response.status.message


@pytest.mark.parametrize(
    ("field", "request_"),
    [
        ("system.name", invocation_request("counter", "add", 1, system="")),
        ("actor.id.name", invocation_request("", "add", 1)),
        ("action_name", invocation_request("counter", "", 1)),
    ],
)
def test_invoke_bytes_missing_field_is_400_naming_it(
    system: sl.ActorSystem, field: str, request_: protocol_pb2.InvocationRequest
) -> None:
    http, response = _invoke(system, request_)
    assert http == 400
    assert response.status.message == f"InvocationRequest.{field} is empty"


def test_invoke_bytes_passes_metadata_to_the_handler(system: sl.ActorSystem) -> None:
    """Checklist C20 (local side): the request metadata is the handler's context metadata."""
    system.register(counter_actor())
    request = invocation_request("counter", "echo", {"x": 1}, metadata={"origin": "sdk"})
    _, response = _invoke(system, request)
    echoed = payloads.unpack(response.value)
    assert echoed == {
        "payload": {"x": 1},
        "metadata": {"origin": "sdk"},
        "caller": None,
        "self": ["counter", ""],
    }


def test_invoke_bytes_bad_request_timeout_is_400(system: sl.ActorSystem) -> None:
    system.register(counter_actor())
    request = invocation_request("counter", "add", 1, metadata={"request-timeout": "soon"})
    http, response = _invoke(system, request)
    assert http == 400
    assert "'request-timeout' must be whole milliseconds, got 'soon'" in response.status.message


def test_invoke_bytes_scheduled_call_answers_async_at_once_and_runs_later(
    system: sl.ActorSystem,
) -> None:
    """Checklist C26 and C27: a future scheduled_to answers at once with no payload, even with
    async=false, and runs later; a past one runs immediately."""
    system.register(counter_actor())
    later = int(time.time() * 1000) + 150
    http, response = _invoke(system, invocation_request("counter", "add", 2, scheduled_to=later))
    assert (http, response.WhichOneof("payload")) == (200, None)
    assert system.state("counter") == 0
    assert _until(lambda: system.state("counter") == 2)
    assert time.time() * 1000 >= later
    past = int(time.time() * 1000) - 60_000
    _invoke(system, invocation_request("counter", "add", 5, scheduled_to=past))
    assert _until(lambda: system.state("counter") == 7, 1.0)


def test_invoke_bytes_register_ref_spawns_the_instance_from_its_template(
    system: sl.ActorSystem,
) -> None:
    """Checklist C28: a new name with register_ref = template creates and invokes the instance,
    whose context says parent == template."""
    template = counter_actor("tmpl")
    template.settings = sl.Actor("tmpl", kind=Kind.UNNAMED).settings
    system.register(template)
    request = invocation_request("n1", "echo", 1, register_ref="tmpl")
    http, response = _invoke(system, request)
    assert http == 200
    assert payloads.unpack(response.value)["self"] == ["n1", "tmpl"]


def test_invoke_bytes_json_reply_uses_the_callers_type_url(system: sl.ActorSystem) -> None:
    """Rule L3: spawn-node-sdk 1.2.0 sends eigr.functions.protocol.JSONType and gets it back."""
    adder = sl.Actor("counter", state=0)

    @adder.action
    def add(ctx: sl.Context, payload: dict[str, int]) -> sl.Value:
        total = ctx.state + payload["amount"]
        return sl.Value({"total": total}, state=total)

    system.register(adder)
    answer = wire.invoke_bytes(system, golden("spawn-node-sdk/proxy-invoke-counter-add.bin"))
    response = protocol_pb2.InvocationResponse.FromString(answer)
    assert response.status.status == protocol_pb2.OK
    assert response.value.type_url == LEGACY_JSON_TYPE_URL
    assert payloads.unpack(response.value) == {"total": 2}


def test_invoke_async_gives_the_same_answers_on_a_loop(system: sl.ActorSystem) -> None:
    system.register(counter_actor())
    bodies = [
        invocation_request("counter", "add", 4).SerializeToString(),
        invocation_request("counter", "nope").SerializeToString(),
        invocation_request("ghost", "add").SerializeToString(),
        b"\xff",
    ]

    async def run() -> list[wire.Answer]:
        return [await wire.invoke_async(system, body) for body in bodies]

    answers = asyncio.run(run())
    assert [a.http for a in answers] == [200, 500, 404, 400]
    assert payloads.unpack(protocol_pb2.InvocationResponse.FromString(answers[0]).value) == 4


def test_spawn_bytes_accepts_and_does_not_activate(system: sl.ActorSystem) -> None:
    """Checklist C29: Accepted, and the instance starts only on its first invocation."""
    template = sl.Actor("tmpl", kind=Kind.UNNAMED, state=0)
    inits: list[str] = []

    @template.action
    def init(ctx: sl.Context, payload: object) -> None:
        inits.append(ctx.self.name)

    @template.action
    def hi(ctx: sl.Context, payload: object) -> str:
        return f"hi from {ctx.self.name}"

    system.register(template)
    request = protocol_pb2.SpawnRequest(
        actors=[actor_pb2.ActorId(name="n1", system=SYSTEM, parent="tmpl")]
    )
    answer = wire.spawn_bytes(system, request.SerializeToString())
    response = protocol_pb2.SpawnResponse.FromString(answer)
    assert (answer.http, response.status.status, response.status.message) == (
        200,
        protocol_pb2.OK,
        "Accepted",
    )
    assert inits == []
    assert system.ask("n1", "hi") == "hi from n1"
    assert inits == ["n1"]


def test_spawn_bytes_unknown_parent_is_actor_not_found(system: sl.ActorSystem) -> None:
    """Checklist C30, diverging: a SpawnResponse that says why, not a bare 500."""
    request = protocol_pb2.SpawnRequest(
        actors=[actor_pb2.ActorId(name="n1", system=SYSTEM, parent="ghost")]
    )
    answer = wire.spawn_bytes(system, request.SerializeToString())
    response = protocol_pb2.SpawnResponse.FromString(answer)
    assert answer.http == 404
    assert response.status.status == protocol_pb2.ACTOR_NOT_FOUND
    assert "'ghost'" in response.status.message


def test_spawn_bytes_without_parent_is_400(system: sl.ActorSystem) -> None:
    request = protocol_pb2.SpawnRequest(actors=[actor_pb2.ActorId(name="n1", system=SYSTEM)])
    answer = wire.spawn_bytes(system, request.SerializeToString())
    assert answer.http == 400
    assert (
        "SpawnRequest.actors[0].parent is empty"
        in protocol_pb2.SpawnResponse.FromString(answer).status.message
    )


def test_state_bytes_answers_actor_state_or_404(system: sl.ActorSystem) -> None:
    """Our GET-state extension (intended D1): ActorState bytes, or 404 for an unknown actor."""
    system.register(sl.Actor("tagged", state={"n": 1}, tags={"k": "v"}))
    answer = wire.state_bytes(system, SYSTEM, "tagged")
    state = actor_pb2.ActorState.FromString(answer)
    assert answer.http == 200
    assert payloads.unpack(state.state) == {"n": 1}
    assert dict(state.tags) == {"k": "v"}
    missing = wire.state_bytes(system, SYSTEM, "ghost")
    assert missing.http == 404
    assert protocol_pb2.RequestStatus.FromString(missing).status == protocol_pb2.ACTOR_NOT_FOUND
    assert wire.state_bytes(system, "elsewhere", "tagged").http == 404


def test_register_bytes_registers_python_sdk_actors_as_remote(system: sl.ActorSystem) -> None:
    """Checklist A1 at the bytes level, with the legacy spawn-python-sdk registration."""
    hosts: list[object] = []

    def host(profile: object) -> object:
        hosts.append(profile)
        return object()

    answer, profile = wire.register_bytes(
        system, golden("spawn-python-sdk/proxy-register.bin"), host
    )
    response = protocol_pb2.RegistrationResponse.FromString(answer)
    assert (answer.http, response.status.status, response.status.message) == (
        200,
        protocol_pb2.OK,
        "Accepted",
    )
    assert response.proxy_info == codec.PROXY_INFO
    assert profile is not None and profile.library == "spawn-python-sdk"
    joe = system.definition("joe")
    assert joe.remote and joe.channels == (sl.Channel("test", "receive"),)
    assert system.definition("mike").settings.kind is Kind.UNNAMED
    assert len(hosts) == 1


def test_register_bytes_other_system_is_refused_with_reason(system: sl.ActorSystem) -> None:
    request = codec.registration_request(
        "other-system", [counter_actor().definition()], protocol_pb2.ServiceInfo(service_name="x")
    )
    answer, _ = wire.register_bytes(system, request.SerializeToString(), lambda profile: None)
    response = protocol_pb2.RegistrationResponse.FromString(answer)
    assert answer.http == 500
    assert response.status.message.startswith("Error on create Actors: ")
    assert "'other-system'" in response.status.message


def test_register_bytes_garbage_is_400(system: sl.ActorSystem) -> None:
    answer, profile = wire.register_bytes(system, b"\xff\xfe garbage", lambda p: None)
    assert (answer.http, profile) == (400, None)
    message = protocol_pb2.RegistrationResponse.FromString(answer).status.message
    assert "does not decode as spawn.RegistrationRequest" in message


def test_invoke_bytes_unencodable_reply_is_500_naming_it(system: sl.ActorSystem) -> None:
    odd = sl.Actor("odd")

    @odd.action
    def give(ctx: sl.Context, payload: object) -> object:
        return {1, 2}

    system.register(odd)
    http, response = _invoke(system, invocation_request("odd", "give"))
    assert http == 500
    assert response.status.message.startswith(
        "the reply of odd.give cannot be sent: payload is a set"
    )
