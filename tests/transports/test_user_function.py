"""The user-function side: notebook actors served to a Spawn proxy (checklist K).

Golden bytes: what a real spawn-python-sdk was sent and answered; our answers to the same
requests must be the same bytes. End to end: ``spawn-lab serve`` in another process is the
proxy, and a notebook system registers with it and serves its actors.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

import spawn_lab as sl
from spawn_lab.core.model import Kind
from spawn_lab.protocol import payloads
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2
from spawn_lab.transports.http import register_with_proxy, serve_user_function
from spawn_lab.transports.userfn import act_async

from .conftest import SYSTEM, counter_actor, golden, http, invocation_request, invoke

REPO = Path(__file__).resolve().parents[2]


def _domain() -> dict[str, type[Message]]:
    """The SDK example's messages (domain.State/Request/Reply), in a private pool so the default
    pool, which decides how every Any unpacks, stays as the other tests expect."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="domain_test.proto", package="domain", syntax="proto3"
    )
    for name, field in (("State", "languages"), ("Request", "language"), ("Reply", "response")):
        message = proto.message_type.add(name=name)
        message.field.add(
            name=field,
            number=1,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=(
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if name == "State"
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            ),
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"domain.{name}"))
        for name in ("State", "Request", "Reply")
    }


DOMAIN = _domain()


def _any(name: str, message: Message) -> any_pb2.Any:
    return any_pb2.Any(
        type_url=f"type.googleapis.com/domain.{name}", value=message.SerializeToString()
    )


def python_sdk_joe() -> sl.Actor:
    """joe of the SDK's example, written as a notebook actor."""
    joe = sl.Actor("joe", channels=[sl.Channel("test")])

    @joe.action
    def setLanguage(ctx: sl.Context, request: any_pb2.Any) -> sl.Value:
        state = (
            DOMAIN["State"].FromString(ctx.state.value)
            if ctx.state is not None
            else DOMAIN["State"]()
        )
        language = DOMAIN["Request"].FromString(request.value).language  # type: ignore[attr-defined]
        state.languages.append(language)  # type: ignore[attr-defined]
        reply = DOMAIN["Reply"](response=f"ok: {language}")  # type: ignore[call-arg]
        return sl.Value(_any("Reply", reply), state=_any("State", state))

    @joe.timer(1000)
    def tick(ctx: sl.Context, payload: object) -> sl.Value:
        return sl.Value(state=_any("State", DOMAIN["State"]()))

    @joe.action
    def receive(ctx: sl.Context, payload: object) -> None:
        return None

    return joe


def _act(system: sl.ActorSystem, body: bytes) -> tuple[int, bytes]:
    answer = asyncio.run(act_async(system, body))
    return answer.http, bytes(answer)


def test_answer_to_golden_request_equals_the_sdks_answer(system: sl.ActorSystem) -> None:
    """Checklist K63: the same request gives the same bytes the real SDK answered."""
    system.register(python_sdk_joe())
    status, body = _act(system, golden("spawn-python-sdk/uf-joe-setLanguage-request.bin"))
    assert status == 200
    assert body == golden("spawn-python-sdk/uf-joe-setLanguage-response.bin")


def test_timer_tick_answer_equals_the_sdks_answer(system: sl.ActorSystem) -> None:
    system.register(python_sdk_joe())
    status, body = _act(system, golden("spawn-python-sdk/uf-joe-timer-tick-request.bin"))
    assert (status, body) == (200, golden("spawn-python-sdk/uf-joe-timer-tick-response.bin"))


def test_unknown_action_is_a_non_2xx_text_answer(system: sl.ActorSystem) -> None:
    """Not a protobuf a proxy could take for success (the SDK sends an HTML 500 here)."""
    system.register(python_sdk_joe())
    status, body = _act(system, golden("spawn-python-sdk/uf-joe-unknown-action-request.bin"))
    assert status == 404
    assert body.decode().startswith("Action [nope] not found for Actor [joe] (its actions: ")


def _invocation(
    actor: actor_pb2.ActorId, action: str, payload: object = sl.NOOP, **context: object
) -> bytes:
    invocation = protocol_pb2.ActorInvocation(actor=actor, action_name=action)
    invocation.current_context.self.CopyFrom(actor)
    state = context.pop("state", None)
    if state is not None:
        invocation.current_context.state.CopyFrom(payloads.pack(state))
    invocation.current_context.tags.update(context.pop("tags", {}))  # type: ignore[arg-type]
    if payload is sl.NOOP:
        invocation.noop.SetInParent()
    else:
        invocation.value.CopyFrom(payloads.pack(payload))
    return invocation.SerializeToString()


def test_answer_always_echoes_context_the_handler_left_alone(system: sl.ActorSystem) -> None:
    """Checklist K63: updated_context is always there, with the same state and tags."""
    system.register(counter_actor())
    body = _invocation(
        actor_pb2.ActorId(name="counter", system=SYSTEM), "echo", 1, state=41, tags={"a": "b"}
    )
    status, data = _act(system, body)
    response = protocol_pb2.ActorInvocationResponse.FromString(data)
    assert status == 200
    assert response.HasField("updated_context")
    assert payloads.unpack(response.updated_context.state) == 41
    assert dict(response.updated_context.tags) == {"a": "b"}
    assert payloads.unpack(response.value)["payload"] == 1


def test_state_change_is_answered_and_local_copy_untouched(system: sl.ActorSystem) -> None:
    """The proxy owns the state: the handler runs on the state it sent, not on ours."""
    system.register(counter_actor())
    body = _invocation(actor_pb2.ActorId(name="counter", system=SYSTEM), "add", 2, state=40)
    _, data = _act(system, body)
    response = protocol_pb2.ActorInvocationResponse.FromString(data)
    assert payloads.unpack(response.updated_context.state) == 42
    assert payloads.unpack(response.value) == 42
    assert system.state("counter") == 0


def test_spawned_instance_resolves_to_its_parent(system: sl.ActorSystem) -> None:
    """Checklist K64: by actor.name, then by actor.parent."""
    template = counter_actor("tmpl")
    template.settings = sl.Actor("tmpl", kind=Kind.UNNAMED).settings
    system.register(template)
    body = _invocation(actor_pb2.ActorId(name="tmpl-7", system=SYSTEM, parent="tmpl"), "echo", "p")
    status, data = _act(system, body)
    assert status == 200
    echoed = payloads.unpack(protocol_pb2.ActorInvocationResponse.FromString(data).value)
    assert echoed["self"] == ["tmpl-7", "tmpl"]


def test_init_runs_with_noop_and_self_as_caller(system: sl.ActorSystem) -> None:
    """Checklist K65: init gets a noop payload with caller = the actor itself."""
    seen: list[object] = []
    actor = sl.Actor("starter", stateful=False)  # stateless: the local system never warms it

    @actor.action
    def init(ctx: sl.Context, payload: object) -> sl.Value:
        seen.append((payload, ctx.caller))
        return sl.Value(state="ready")

    system.register(actor)
    own = actor_pb2.ActorId(name="starter", system=SYSTEM)
    invocation = protocol_pb2.ActorInvocation.FromString(_invocation(own, "init"))
    invocation.caller.CopyFrom(own)
    _, data = _act(system, invocation.SerializeToString())
    assert seen == [(sl.NOOP, sl.ActorId("starter", SYSTEM))]
    assert (
        payloads.unpack(protocol_pb2.ActorInvocationResponse.FromString(data).updated_context.state)
        == "ready"
    )


def test_raising_handler_and_garbage_get_clear_refusals(system: sl.ActorSystem) -> None:
    broken = sl.Actor("broken")

    @broken.action
    async def fail(ctx: sl.Context, payload: object) -> None:
        raise ValueError("no way")

    system.register(broken)
    status, data = _act(
        system, _invocation(actor_pb2.ActorId(name="broken", system=SYSTEM), "fail")
    )
    assert (status, data) == (500, b"broken.fail raised ValueError: no way")
    assert _act(system, b"\xff\xff")[0] == 400
    status, data = _act(system, _invocation(actor_pb2.ActorId(name="ghost", system=SYSTEM), "x"))
    assert status == 404 and b"Actor ghost not found" in data


def test_registration_request_carries_state_and_metadata(system: sl.ActorSystem) -> None:
    """Checklist K66: every actor with an ActorState and a Metadata message, even empty ones."""
    from spawn_lab.protocol import codec
    from spawn_lab.transports.http.userfn import service_info

    system.register(counter_actor())
    system.register(sl.Actor("bare", stateful=False))
    request = codec.registration_request(
        SYSTEM, [system.definition("counter"), system.definition("bare")], service_info()
    )
    decoded = protocol_pb2.RegistrationRequest.FromString(request.SerializeToString())
    for actor in decoded.actor_system.registry.actors.values():
        assert actor.HasField("state") and actor.HasField("metadata")
    assert payloads.unpack(decoded.actor_system.registry.actors["counter"].state.state) == 0
    assert decoded.service_info.support_library_name == "spawn-lab"


# -- end to end against `spawn-lab serve` in another process ------------------------------------


def _start_proxy(*args: str) -> tuple[subprocess.Popen[str], str]:
    script = Path(sys.executable).with_name("spawn-lab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "spawn_lab.cli"]
    env = {k: v for k, v in os.environ.items() if k != "SPAWN_LAB_TOKEN"}
    process = subprocess.Popen(
        [*command, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    if not ready:
        process.kill()
        pytest.fail("spawn-lab serve printed no address within 30 s")
    line = process.stdout.readline()
    assert " on http://127.0.0.1:" in line, line + (process.stderr.read() if process.stderr else "")
    return process, line.split(" on ", 1)[1].split()[0]


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0
    return out


@pytest.fixture
def notebook() -> Iterator[tuple[sl.ActorSystem, str]]:
    """A notebook system serving its actors as a user function."""
    with sl.ActorSystem(SYSTEM, store="memory://") as local:
        local.register(counter_actor())
        template = counter_actor("tmpl")
        template.settings = sl.Actor("tmpl", kind=Kind.UNNAMED).settings
        local.register(template)
        server = serve_user_function(local, port=0)
        try:
            yield local, server.url
        finally:
            server.close()


def test_notebook_actors_served_to_spawn_lab_proxy_process(
    notebook: tuple[sl.ActorSystem, str], tmp_path: Path
) -> None:
    """Checklist K63-K66 end to end: register with a proxy in another process, get invoked
    through it (state kept by the proxy), and have that state flushed on SIGTERM."""
    local, user_function = notebook
    store = f"sqlite:///{tmp_path / 'proxy.db'}"
    process, url = _start_proxy(
        "--user-function", user_function.removeprefix("http://"), "--store", store
    )
    try:
        response = register_with_proxy(local, url)
        assert (response.status.status, response.status.message) == (protocol_pb2.OK, "Accepted")
        for expected in (5, 10):
            reply = invoke(url, invocation_request("counter", "add", 5))
            assert payloads.unpack(reply.invocation().value) == expected
        spawned = invoke(url, invocation_request("inst", "echo", "x", register_ref="tmpl"))
        assert payloads.unpack(spawned.invocation().value)["self"] == ["inst", "tmpl"]
        state = http("GET", f"{url}/api/v1/system/{SYSTEM}/actors/counter", content_type=None)
        assert payloads.unpack(actor_pb2.ActorState.FromString(state.body).state) == 10
        assert local.state("counter") == 0
    finally:
        out = _stop(process)
    assert "state flushed" in out
    process, url = _start_proxy(
        "--user-function", user_function.removeprefix("http://"), "--store", store
    )
    try:
        register_with_proxy(local, url)
        reply = invoke(url, invocation_request("counter", "add", 1))
        assert payloads.unpack(reply.invocation().value) == 11
    finally:
        _stop(process)


def test_register_with_proxy_reports_refusals(notebook: tuple[sl.ActorSystem, str]) -> None:
    local, _ = notebook
    process, url = _start_proxy(
        "--system", "other-system", "--token", "t0k", "--store", "memory://"
    )
    try:
        with pytest.raises(sl.RegistrationError, match="refused: missing or wrong token"):
            register_with_proxy(local, url)
        with pytest.raises(sl.RegistrationError, match="serves actor system 'other-system'"):
            register_with_proxy(local, url, token="t0k")
    finally:
        _stop(process)


def test_cli_serve_with_grpc_port_serves_health_over_grpc(tmp_path: Path) -> None:
    """`spawn-lab serve --grpc-port 0` also serves gRPC: the HealthCheckActor answers (§9.4)."""
    import grpc
    from google.protobuf import empty_pb2

    from spawn_lab.protocol.spawn.actors import healthcheck_pb2

    script = Path(sys.executable).with_name("spawn-lab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "spawn_lab.cli"]
    store = f"sqlite:///{tmp_path / 'g.db'}"
    process = subprocess.Popen(
        [*command, "serve", "--port", "0", "--grpc-port", "0", "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "spawn-lab serve printed no address within 30 s"
        line = process.stdout.readline()
        assert "gRPC on 127.0.0.1:" in line, line
        address = line.split("gRPC on ", 1)[1].split()[0].rstrip(",")
        with grpc.insecure_channel(address) as channel:
            liveness = channel.unary_unary(
                "/spawn.actors.healthcheck.HealthCheckActor/Liveness",
                request_serializer=empty_pb2.Empty.SerializeToString,
                response_deserializer=healthcheck_pb2.HealthCheckReply.FromString,
            )
            reply = liveness(empty_pb2.Empty(), timeout=10)
        assert reply.status.status == "OK"
    finally:
        out = _stop(process)
    assert "spawn-lab stopped" in out
