"""Actors registered by a remote SDK: the proxy calls their user function (§1.3, §4.5, §4.6).

The user function here is a scripted fake on a real socket; it records each ActorInvocation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import spawn_lab as sl
from spawn_lab.core.model import Kind
from spawn_lab.protocol import codec, payloads
from spawn_lab.protocol.spawn.actors import protocol_pb2
from spawn_lab.transports.http import HttpServer

from .conftest import (
    OCTET,
    SYSTEM,
    FakeUserFunction,
    answer,
    counter_actor,
    golden,
    http,
    invocation_request,
    invoke,
)

Proxy = Callable[..., HttpServer]
UserFunction = Callable[..., FakeUserFunction]


def register_remote(server: HttpServer, *actors: sl.Actor, library: str = "test-sdk") -> None:
    """Register ``actors`` with the proxy as an SDK would (their handlers are not used)."""
    request = codec.registration_request(
        SYSTEM,
        [a.definition() for a in actors],
        protocol_pb2.ServiceInfo(service_name=library, support_library_name=library),
    )
    reply = http("POST", server.url + "/api/v1/system", request.SerializeToString())
    assert reply.status == 200, reply.body


def remote(name: str, *actions: str, **options: object) -> sl.Actor:
    """An SDK actor's declaration: names only, its code lives in the user function."""
    actor = sl.Actor(name, **options)  # type: ignore[arg-type]
    for action in actions:
        actor.action(lambda ctx, payload: None, name=action)
    return actor


def value_of(reply: object) -> object:
    response = reply.invocation()  # type: ignore[attr-defined]
    assert response.status.status == protocol_pb2.OK, response.status.message
    return payloads.unpack(response.value) if response.HasField("value") else sl.NOOP


def test_invocation_carries_state_tags_metadata_and_self(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C20: context state and tags are the actor's, metadata the request's, caller
    unset for an external call, self == actor == the resolved id; C21: the returned state
    replaces the old one."""
    fake = user_function(lambda inv: answer(state={"n": 2}, reply="done", tags={"t": "1"}))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work", state={"n": 1}, tags={"t": "0"}))
    reply = invoke(server.url, invocation_request("joe", "work", {"x": 1}, metadata={"m": "v"}))
    assert value_of(reply) == "done"
    (sent,) = fake.calls("work")
    context = sent.current_context
    assert (sent.actor.name, sent.actor.system) == ("joe", SYSTEM)
    assert context.self == sent.actor
    assert payloads.unpack(context.state) == {"n": 1}
    assert dict(context.tags) == {"t": "0"}
    assert dict(context.metadata) == {"m": "v"}
    assert not sent.HasField("caller") and not context.HasField("caller")
    assert payloads.unpack(sent.value) == {"x": 1}
    assert system.inspect("joe")[:2] == ({"n": 2}, {"t": "1"})


def test_unset_state_and_tags_keep_the_old_ones(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C21 (state unset: unchanged) and C22 with intended D8 (no tags: kept)."""
    fake = user_function(lambda inv: answer(reply=1))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work", state={"n": 1}, tags={"t": "0"}))
    assert value_of(invoke(server.url, invocation_request("joe", "work"))) == 1
    assert system.inspect("joe")[:2] == ({"n": 1}, {"t": "0"})


def test_changed_tags_are_seen_by_the_next_call(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C23."""
    counter = iter(range(100))
    fake = user_function(lambda inv: answer(tags={"seen": str(next(counter))}))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work"))
    for _ in range(3):
        invoke(server.url, invocation_request("joe", "work"))
    assert [dict(i.current_context.tags) for i in fake.calls("work")] == [
        {},
        {"seen": "0"},
        {"seen": "1"},
    ]


def test_stateless_actor_without_initial_state_keeps_updates(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Intended D9: an actor registered without ActorState still keeps returned state."""
    fake = user_function(lambda inv: answer(state=len(fake.seen)))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work", stateful=False))
    invoke(server.url, invocation_request("joe", "work"))
    invoke(server.url, invocation_request("joe", "work"))
    assert payloads.unpack(fake.calls("work")[1].current_context.state) == 1


def test_user_function_html_500_is_a_clear_error(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C25 with the real spawn-python-sdk's answer to an unknown action: HTTP 500 and
    an HTML page, which becomes ERROR naming the status and showing the start of the body."""
    html_page = golden("spawn-python-sdk/uf-joe-unknown-action-response.bin")
    fake = user_function(lambda inv: (500, "text/html", html_page))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "nope"))
    reply = invoke(server.url, invocation_request("joe", "nope"))
    status = reply.invocation().status
    assert reply.status == 500
    assert status.status == protocol_pb2.ERROR
    assert "answered HTTP 500 text/html" in status.message
    assert "<!doctype html>" in status.message
    assert len(fake.seen) == 1  # not retried: only transport errors are (intended D7)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ((200, OCTET, b""), "answered an empty body"),
        ((200, OCTET, b"\xff\xff\xff"), "not an ActorInvocationResponse"),
        (answer(context=False), "ActorInvocationResponse.updated_context is missing"),
    ],
    ids=["empty", "garbage", "no-context"],
)
def test_unusable_user_function_answer_fails_at_once(
    system: sl.ActorSystem,
    proxy_for: Proxy,
    user_function: UserFunction,
    reply: tuple[int, str, bytes],
    expected: str,
) -> None:
    """Checklist C24, diverging on purpose (D7 intended): no retry loop, one clear ERROR."""
    fake = user_function(lambda inv: reply)
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work"))
    started = time.monotonic()
    status = invoke(server.url, invocation_request("joe", "work")).invocation().status
    assert time.monotonic() - started < 2.0
    assert status.status == protocol_pb2.ERROR
    assert expected in status.message
    assert len(fake.seen) == 1


def test_down_user_function_fails_after_bounded_retries(
    system: sl.ActorSystem, proxy_for: Proxy
) -> None:
    """Intended D7: connection errors are retried twice, then ERROR, within a bounded time."""
    server = proxy_for(system, user_function="127.0.0.1:9")
    register_remote(server, remote("joe", "work"))
    started = time.monotonic()
    status = invoke(server.url, invocation_request("joe", "work")).invocation().status
    assert time.monotonic() - started < 3.0
    assert status.status == protocol_pb2.ERROR
    assert "is unreachable after 3 attempts" in status.message
    assert "joe.work" in status.message


def test_slow_user_function_times_out_without_blocking_others(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """A slow user function fails its own call after the timeout; a notebook actor and the
    health route answer meanwhile."""
    release = threading.Event()

    async def slow(inv: protocol_pb2.ActorInvocation) -> tuple[int, str, bytes]:
        import asyncio

        while not release.is_set():
            await asyncio.sleep(0.01)
        return answer()

    fake = user_function(slow)
    system.register(counter_actor())
    server = proxy_for(system, user_function=fake.url, user_function_timeout=0.5)
    register_remote(server, remote("joe", "work"))
    result: list[object] = []
    caller = threading.Thread(
        target=lambda: result.append(invoke(server.url, invocation_request("joe", "work")))
    )
    started = time.monotonic()
    caller.start()
    for amount in range(1, 4):
        assert value_of(invoke(server.url, invocation_request("counter", "add", 1))) == amount
    assert http("GET", server.url + "/health/readiness", content_type=None).status == 200
    caller.join(5)
    release.set()
    elapsed = time.monotonic() - started
    status = result[0].invocation().status  # type: ignore[attr-defined]
    assert 0.4 < elapsed < 4.0
    assert status.status == protocol_pb2.ERROR
    assert "did not answer within 0.5 s" in status.message


def test_request_timeout_metadata_bounds_the_user_function_call(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    release = threading.Event()

    async def slow(inv: protocol_pb2.ActorInvocation) -> tuple[int, str, bytes]:
        import asyncio

        while not release.is_set():
            await asyncio.sleep(0.01)
        return answer()

    fake = user_function(slow)
    server = proxy_for(system, user_function=fake.url, user_function_timeout=30)
    register_remote(server, remote("joe", "work"))
    started = time.monotonic()
    reply = invoke(
        server.url, invocation_request("joe", "work", metadata={"request-timeout": "300"})
    )
    release.set()
    assert time.monotonic() - started < 3.0
    assert "did not answer within 0.3 s" in reply.invocation().status.message


def test_default_action_is_answered_without_the_user_function(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C17: getState of an actor that did not register it never reaches the SDK."""
    fake = user_function(lambda inv: answer())
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work", state={"n": 5}))
    assert value_of(invoke(server.url, invocation_request("joe", "getState"))) == {"n": 5}
    assert fake.seen == []


def test_register_ref_invocation_carries_the_parent(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C28 for a remote template: the ActorInvocation's actor.parent is the template."""
    fake = user_function(lambda inv: answer(reply=inv.actor.name))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("tmpl", "hi", kind=Kind.UNNAMED))
    reply = invoke(server.url, invocation_request("n7", "hi", register_ref="tmpl"))
    assert value_of(reply) == "n7"
    (sent,) = fake.calls("hi")
    assert (sent.actor.name, sent.actor.parent) == ("n7", "tmpl")


def test_checkpoint_saves_before_the_reply(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Intended D2: checkpoint=true saves synchronously, bumps the revision, replies normally."""
    fake = user_function(lambda inv: answer(state={"n": 3}, reply="ok", checkpoint=True))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work", state={"n": 0}))
    assert value_of(invoke(server.url, invocation_request("joe", "work"))) == "ok"
    assert system.inspect("joe") == ({"n": 3}, {}, 1)
    assert system.store.load(SYSTEM, "joe") is not None


def test_side_effect_and_pipe_from_remote_to_notebook_actor(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Workflows cross from an SDK actor to notebook actors: the side effect runs with the
    source metadata overlaid by its own (C36), and the pipe answers with the target's value,
    computed from the source's output (C34)."""
    notes: list[tuple[object, dict[str, str], str | None]] = []
    recorder = sl.Actor("recorder")

    @recorder.action
    def note(ctx: sl.Context, payload: object) -> None:
        notes.append((payload, ctx.metadata, ctx.caller.name if ctx.caller else None))

    workflow = codec.workflow_to_pb(
        sl.Value(
            reply=5,
            effects=(sl.SideEffect("recorder", "note", "fx", metadata={"e": "1", "origin": "fx"}),),
            pipe=sl.Pipe("counter", "add"),
        ),
        sl.ActorId("joe", SYSTEM),
        wall_ms=time.time() * 1000,
    )
    fake = user_function(lambda inv: answer(reply=5, workflow=workflow))
    system.register(counter_actor())
    system.register(recorder)
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work"))
    reply = invoke(
        server.url, invocation_request("joe", "work", metadata={"origin": "o", "k": "v"})
    )
    assert value_of(reply) == 5  # counter.add(5), piped from joe's output 5
    system.run_until_idle(5)
    assert notes == [("fx", {"origin": "fx", "k": "v", "e": "1"}, "joe")]


def test_forward_from_notebook_actor_to_remote_actor(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C35 across the boundary: the remote target gets the original input, and its
    caller is the forwarding notebook actor."""
    fake = user_function(lambda inv: answer(reply=f"remote got {payloads.unpack(inv.value)}"))
    front = sl.Actor("front")

    @front.action
    def route(ctx: sl.Context, payload: object) -> sl.Value:
        return sl.Value("ignored", forward=sl.Forward("joe", "work"))

    system.register(front)
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work"))
    assert value_of(invoke(server.url, invocation_request("front", "route", "X"))) == "remote got X"
    (sent,) = fake.calls("work")
    assert sent.caller.name == "front"
    assert sent.current_context.caller.name == "front"


def test_broadcast_from_remote_reaches_notebook_subscriber(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C37 across the boundary: the subscriber's receive runs with the payload."""
    got: list[object] = []
    listener = sl.Actor("listener", channels=[sl.Channel("news")])

    @listener.action
    def receive(ctx: sl.Context, payload: object) -> None:
        got.append((payload, ctx.caller.name if ctx.caller else None))

    system.register(listener)
    system.ask("listener", "getState")  # activate it, so it subscribes (§5.1)
    workflow = protocol_pb2.Workflow()
    workflow.broadcast.channel_group = "news"
    workflow.broadcast.value.CopyFrom(payloads.pack("hello"))
    fake = user_function(lambda inv: answer(workflow=workflow))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "shout"))
    value_of(invoke(server.url, invocation_request("joe", "shout")))
    system.run_until_idle(5)
    assert got == [("hello", "joe")]


def test_legacy_broadcast_action_name_is_honoured(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Rule L4: spawn-python-sdk names the subscribers' action in Broadcast field 2."""
    got: list[object] = []
    listener = sl.Actor("listener", channels=[sl.Channel("test", "onNews")])

    @listener.action
    def onNews(ctx: sl.Context, payload: object) -> None:
        got.append(payload)

    system.register(listener)
    broadcast = protocol_pb2.Broadcast(channel_group="test", value=payloads.pack("hi"))
    raw = broadcast.SerializeToString() + codec.len_field(b"\x12", b"onNews")
    response = protocol_pb2.ActorInvocationResponse()
    response.updated_context.SetInParent()
    response.workflow.broadcast.MergeFromString(raw)
    fake = user_function(lambda inv: (200, OCTET, response.SerializeToString()))
    server = proxy_for(system, user_function=fake.url)
    reply = http(
        "POST", server.url + "/api/v1/system", golden("spawn-python-sdk/proxy-register.bin")
    )
    assert reply.status == 200
    invoke(server.url, invocation_request("joe", "setLanguage", "x"))
    system.run_until_idle(5)
    assert got == ["hi"]


def test_task_actor_runs_on_the_user_function(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """Checklist C32 for a remote TASK actor: run off the loop, state visible after."""
    fake = user_function(lambda inv: answer(state="done", reply="ran"))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("crunch", "work", kind=Kind.TASK))
    assert value_of(invoke(server.url, invocation_request("crunch", "work"))) == "ran"
    assert system.state("crunch") == "done"


def test_notebook_ask_of_remote_actor_from_a_thread(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """A cell's blocking ask reaches the SDK actor via the driver loop and the proxy's client."""
    fake = user_function(lambda inv: answer(reply=payloads.unpack(inv.value) * 2))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "double"))
    assert system.ask("joe", "double", 21) == 42
    system.tell("joe", "double", 1)
    system.run_until_idle(5)
    assert len(fake.calls("double")) == 2


def test_remote_actor_after_the_proxy_closed_fails_at_once(
    system: sl.ActorSystem, proxy_for: Proxy, user_function: UserFunction
) -> None:
    """The SDK's actors stay registered, but their client died with the server: a clear
    error, and the actor is free for the next message (not stuck busy)."""
    fake = user_function(lambda inv: answer(reply=1))
    server = proxy_for(system, user_function=fake.url)
    register_remote(server, remote("joe", "work"))
    server.close()
    for _ in range(2):
        with pytest.raises(sl.InvocationError, match=r"client of user function .* is closed"):
            system.ask("joe", "work", timeout=5)
