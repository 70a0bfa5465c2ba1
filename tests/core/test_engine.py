"""Spawn's semantics in the pure engine, scripted event by event (spec §§3-7, checklist §11)."""

from __future__ import annotations

import pytest

from spawn_lab.core.effects import Status, Via
from spawn_lab.core.errors import (
    ActionNotFoundError,
    ActorNotFoundError,
    InvocationError,
    RegistrationError,
)
from spawn_lab.core.model import (
    NOOP,
    ActorId,
    Broadcast,
    Channel,
    Forward,
    Kind,
    Pipe,
    SideEffect,
    Value,
)
from spawn_lab.core.trace import EventKind
from spawn_lab.runtime.actors import Actor
from spawn_lab.testing import EngineHarness


def counter(name: str = "counter", **settings: object) -> Actor:
    actor = Actor(name, state=0, **settings)  # type: ignore[arg-type]

    @actor.action
    def add(ctx, n):
        return Value(ctx.state + n, state=ctx.state + n)

    @actor.action
    def echo(ctx, payload):
        return {
            "payload": payload,
            "caller": ctx.caller.name if ctx.caller else None,
            "meta": dict(ctx.metadata),
            "self": ctx.self.name,
            "parent": ctx.self.parent,
        }

    @actor.action
    def boom(ctx, payload):
        raise ValueError("kaput")

    return actor


@pytest.fixture
def h() -> EngineHarness:
    harness = EngineHarness()
    harness.register(counter())
    return harness


def test_ask_replies_with_value_and_updates_state(h: EngineHarness) -> None:
    """§11 C4: a sync invocation returns the action's value."""
    inv = h.ask("counter", "add", 2)
    h.run_until_idle()
    assert h.value(inv) == 2
    assert h.engine.state_of("counter")[0] == 2


def test_default_get_actions_served_without_handler(h: EngineHarness) -> None:
    """§11 C17: get/getState/... answer the current state without calling the user code."""
    h.run_until_idle()
    h.ask("counter", "add", 5)
    invs = [h.ask("counter", name) for name in ("get", "Get", "get_state", "getState", "GetState")]
    h.run_until_idle()
    assert [h.value(i) for i in invs] == [5] * 5
    assert [c[1] for c in h.calls] == ["add"]


def test_registered_get_action_reaches_the_handler() -> None:
    """§11 C18: an actor that registers `get` gets the call itself."""
    h = EngineHarness()
    actor = Actor("g", state=1)

    @actor.action
    def get(ctx, payload):
        return "mine"

    h.register(actor)
    inv = h.ask("g", "get")
    h.run_until_idle()
    assert h.value(inv) == "mine"


def test_init_runs_once_per_activation_before_first_message() -> None:
    """§11 C19: init runs on activation with noop payload and caller = self; its state is seen."""
    h = EngineHarness()
    actor = Actor("i", state={}, stateful=False)
    seen = []

    @actor.action
    def init(ctx, payload):
        seen.append((payload, ctx.caller, ctx.self))
        return Value(state={"ready": True}, tags={"phase": "initial"})

    @actor.action
    def read(ctx, payload):
        return {"state": ctx.state, "tags": ctx.tags}

    h.register(actor)
    inv = h.ask("i", "read")
    h.run_until_idle()
    assert h.value(inv) == {"state": {"ready": True}, "tags": {"phase": "initial"}}
    assert seen == [(NOOP, ActorId("i", "test"), ActorId("i", "test"))]
    h.ask("i", "read")
    h.run_until_idle()
    assert len(seen) == 1


def test_context_carries_caller_metadata_and_self(h: EngineHarness) -> None:
    """§11 C20: the handler sees the request metadata, an unset caller for external calls, self."""
    inv = h.ask("counter", "echo", "x", metadata={"k": "v"})
    h.run_until_idle()
    assert h.value(inv) == {
        "payload": "x",
        "caller": None,
        "meta": {"k": "v"},
        "self": "counter",
        "parent": "",
    }


def test_state_unset_in_reply_keeps_state_and_tags(h: EngineHarness) -> None:
    """§11 C21 and D8 (intended): no state → unchanged; no tags → kept, not cleared."""
    actor = Actor("t", state="s0", tags={"a": "1"})

    @actor.action
    def noop(ctx, payload):
        return Value("r")

    @actor.action
    def retag(ctx, payload):
        return Value(tags={"b": "2"})

    @actor.action
    def read(ctx, payload):
        return (ctx.state, ctx.tags)

    h.register(actor)
    h.ask("t", "noop")
    r1 = h.ask("t", "read")
    h.ask("t", "retag")
    r2 = h.ask("t", "read")
    h.run_until_idle()
    assert h.value(r1) == ("s0", {"a": "1"})
    assert h.value(r2) == ("s0", {"b": "2"})  # §11 C22/C23: tags replaced wholesale, seen next


def test_handler_error_reaches_asker_and_actor_keeps_serving(h: EngineHarness) -> None:
    """§11 C25: an action that raises gives the caller an error; the actor goes on."""
    bad = h.ask("counter", "boom")
    good = h.ask("counter", "add", 1)
    h.run_until_idle()
    error = h.reply(bad).error
    assert isinstance(error, InvocationError)
    assert "kaput" in str(error) and "ValueError" in error.remote_traceback
    assert h.value(good) == 1


def test_unknown_actor_raises_at_once() -> None:
    """ACTOR_NOT_FOUND is immediate, not after a 60 s retry window (divergence from §11 A7)."""
    h = EngineHarness()
    with pytest.raises(ActorNotFoundError, match="'ghost' not found"):
        h.ask("ghost", "x")


def test_unknown_action_lists_the_actions(h: EngineHarness) -> None:
    """§11 A6: an unknown action fails at once; our message lists the actor's actions."""
    with pytest.raises(
        ActionNotFoundError, match=r"'nope' not found for actor 'counter'.*add, boom, echo"
    ):
        h.ask("counter", "nope")


def test_invalid_names_are_refused_with_the_value() -> None:
    with pytest.raises(RegistrationError, match="'bad name!'"):
        Actor("bad name!")
    with pytest.raises(RegistrationError, match="interval_ms"):
        Actor("x").timer(0, name="tick")(lambda ctx, p: None)


def test_scheduled_invocation_fires_at_its_time(h: EngineHarness) -> None:
    """§11 C26/C27: a delayed call is async and runs when its time comes; past times run now."""
    h.run_until_idle()
    h.tell("counter", "add", 5, delay=5.0)
    h.run_until_idle()
    assert h.engine.state_of("counter")[0] == 0
    h.advance(4.9)
    assert h.engine.state_of("counter")[0] == 0
    h.advance(0.2)
    assert h.engine.state_of("counter")[0] == 5


def test_register_ref_spawns_instance_from_template() -> None:
    """§11 C28: invoking a new name with register_ref creates it from the template."""
    h = EngineHarness()
    h.register(counter("tmpl", kind=Kind.UNNAMED))
    inv = h.ask("u1", "echo", 1, register_ref="tmpl")
    h.run_until_idle()
    assert h.value(inv)["parent"] == "tmpl"
    assert h.value(inv)["self"] == "u1"


def test_spawn_registers_without_activating() -> None:
    """§11 C29: a SpawnRequest is accepted and nothing runs until the first invocation."""
    h = EngineHarness()
    tmpl = counter("tmpl", kind=Kind.UNNAMED)
    inits = []

    @tmpl.action
    def init(ctx, payload):
        inits.append(ctx.self.name)

    h.register(tmpl)
    h.engine.spawn(ActorId("a", "test", "tmpl"), h.now)
    h.run_until_idle()
    assert inits == [] and h.engine.state_of("a") is None
    h.ask("a", "add", 1)
    h.run_until_idle()
    assert inits == ["a"]


def test_spawn_from_unknown_template_fails_clearly() -> None:
    """§11 C30 (intended): a clear error naming the missing template, not a bare 500."""
    h = EngineHarness()
    with pytest.raises(ActorNotFoundError, match="no UNNAMED template 'nope'"):
        h.engine.spawn(ActorId("a", "test", "nope"), h.now)


def test_stateless_actor_keeps_state_while_active() -> None:
    """§11 C31: state lives in memory between invocations while the actor is active."""
    h = EngineHarness()
    h.register(counter("s", stateful=False))
    h.ask("s", "add", 2)
    inv = h.ask("s", "add", 3)
    h.run_until_idle()
    assert h.value(inv) == 5
    assert h.saves == []


def test_one_message_at_a_time_in_arrival_order(h: EngineHarness) -> None:
    """§11 C33: while one action runs, the next waits; order is arrival order."""
    h.run_until_idle()
    invs = [h.ask("counter", "add", n) for n in (1, 2, 3)]
    assert len(h.pending) == 1
    h.run_until_idle()
    assert [h.value(i) for i in invs] == [1, 3, 6]


def chain(h: EngineHarness, how: str) -> None:
    for name, target in (("a", "b"), ("b", "c"), ("c", None)):
        actor = Actor(name, stateful=False)

        def step(ctx, payload, name=name, target=target):
            caller = ctx.caller.name if ctx.caller else "-"
            data = f"{name}<{payload}|{caller}|{ctx.metadata.get('origin_meta')}>"
            if target is None:
                return data
            route = Pipe(target, "step") if how == "pipe" else Forward(target, "step")
            return Value(
                data,
                pipe=route if how == "pipe" else None,
                forward=route if how == "forward" else None,
            )

        actor.action(step, name="step")
        h.register(actor)


def test_pipe_chain_passes_output_and_metadata() -> None:
    """§11 D34: A→B→C pipe: the caller gets C's value; C sees caller B and the metadata."""
    h = EngineHarness()
    chain(h, "pipe")
    inv = h.ask("a", "step", "x", metadata={"origin_meta": "meta_present"})
    h.run_until_idle()
    assert h.value(inv) == "c<b<a<x|-|meta_present>|a|meta_present>|b|meta_present>"


def test_forward_chain_passes_input() -> None:
    """§11 D35: forward: every hop gets the original input; the caller gets C's value."""
    h = EngineHarness()
    chain(h, "forward")
    inv = h.ask("a", "step", "x", metadata={"origin_meta": "m"})
    h.run_until_idle()
    assert h.value(inv) == "c<x|b|m>"


def test_pipe_to_unknown_actor_answers_with_error() -> None:
    """D18 (intended): a failing route propagates the error to the caller."""
    h = EngineHarness()
    actor = Actor("a", stateful=False)
    actor.action(lambda ctx, p: Value(1, pipe=Pipe("ghost", "x")), name="go")
    h.register(actor)
    inv = h.ask("a", "go")
    h.run_until_idle()
    assert isinstance(h.reply(inv).error, ActorNotFoundError)


def test_side_effect_does_not_delay_reply() -> None:
    """§11 D36: the caller gets the source's value at once; the effect runs later, merged."""
    h = EngineHarness()
    src = Actor("src", stateful=False)
    src.action(
        lambda ctx, p: Value("mine", effects=(SideEffect("dst", "got", p, metadata={"e": "1"}),)),
        name="go",
    )
    dst = Actor("dst", stateful=False)
    got = []
    dst.action(lambda ctx, p: got.append((p, ctx.caller.name, dict(ctx.metadata))), name="got")
    h.register(src)
    h.register(dst)
    inv = h.ask("src", "go", 7, metadata={"o": "x", "e": "0"})
    h.run_one()
    assert h.value(inv) == "mine"
    assert got == []
    h.run_until_idle()
    assert got == [(7, "src", {"o": "x", "e": "1"})]


def broadcast_mesh(
    h: EngineHarness, stateful_sub: bool = True
) -> list[tuple[str, object, str, dict]]:
    received: list[tuple[str, object, str, dict]] = []
    pub = Actor("pub", stateful=True, state=0, channels=[Channel("news")])
    pub.action(lambda ctx, p: Value(broadcast=Broadcast("news", p)), name="publish")
    pub.action(
        lambda ctx, p: received.append(("pub", p, ctx.caller.name, dict(ctx.metadata))),
        name="receive",
    )
    sub = Actor("sub", stateful=stateful_sub, channels=[Channel("news", "on_news")])
    sub.action(
        lambda ctx, p: received.append(("sub", p, ctx.caller.name, dict(ctx.metadata))),
        name="on_news",
    )
    h.register(pub)
    h.register(sub)
    return received


def test_broadcast_reaches_subscribers_and_publisher() -> None:
    """§11 D37/D38: subscribers' channel action runs with caller = publisher and no metadata."""
    h = EngineHarness()
    received = broadcast_mesh(h)
    h.run_until_idle()
    h.ask("pub", "publish", "hello", metadata={"m": "1"})
    h.run_until_idle()
    assert sorted(received) == [("pub", "hello", "pub", {}), ("sub", "hello", "pub", {})]


def test_broadcast_skips_never_activated_stateless_subscriber() -> None:
    """§11 D39: subscribing happens at activation; a never-activated stateless actor gets none."""
    h = EngineHarness()
    received = broadcast_mesh(h, stateful_sub=False)
    h.ask("pub", "publish", "hello")
    h.run_until_idle()
    assert [r[0] for r in received] == ["pub"]


def test_pipe_with_register_ref_spawns_target() -> None:
    """§11 D40: a pipe with register_ref spawns the target from the template."""
    h = EngineHarness()
    h.register(counter("tmpl", kind=Kind.UNNAMED))
    a = Actor("a", stateful=False)
    a.action(lambda ctx, p: Value(p, pipe=Pipe("fresh", "echo", register_ref="tmpl")), name="go")
    h.register(a)
    inv = h.ask("a", "go", 3)
    h.run_until_idle()
    assert h.value(inv)["parent"] == "tmpl"


def test_snapshot_written_once_per_interval_with_revision_bump(h: EngineHarness) -> None:
    """§11 E41: a changed state is saved within one interval (ACTIVATED, revision+1), once."""
    h.run_until_idle()
    h.ask("counter", "add", 1)
    h.ask("counter", "add", 1)
    h.run_until_idle()
    assert h.saves == []
    h.advance(2.0)
    assert [(s.revision, s.status, s.state) for s in h.saves] == [(1, Status.ACTIVATED, 2)]
    h.advance(2.0)
    assert len(h.saves) == 1


def test_idle_deactivation_saves_and_reload_restores() -> None:
    """§11 E42/E43 with D5 intended: idle for the timeout → saved DEACTIVATED; next call reloads."""
    h = EngineHarness()
    h.register(counter(deactivate_timeout_ms=1_000, snapshot_interval_ms=None))
    h.ask("counter", "add", 4)
    h.run_until_idle()
    h.advance(0.6)
    h.ask("counter", "add", 1)
    h.run_until_idle()
    h.advance(0.6)
    assert h.engine.state_of("counter") is not None  # activity postponed the idle check
    h.advance(0.5)
    assert h.engine.state_of("counter") is None
    assert h.statuses("counter") == [Status.DEACTIVATED]
    inv = h.ask("counter", "add", 1)
    h.run_until_idle()
    assert h.value(inv) == 6


def test_projection_actor_never_deactivates() -> None:
    """§11 E43: PROJECTION actors never stop."""
    from spawn_lab.core.model import ProjectionSubject

    h = EngineHarness()
    proj = Actor(
        "p",
        kind=Kind.PROJECTION,
        deactivate_timeout_ms=100,
        subjects=[ProjectionSubject("counter", "add", "on")],
    )
    proj.action(lambda ctx, p: None, name="on")
    h.register(proj)
    h.advance(10)
    assert h.engine.state_of("p") is not None


def test_checkpoint_saves_before_reply_and_bumps_revision() -> None:
    """D2 intended: checkpoint=True stores durably, bumps the revision, replies normally."""
    h = EngineHarness()
    actor = Actor("c", state=0)
    actor.action(lambda ctx, p: Value("ok", state=ctx.state + 1, checkpoint=True), name="bump")
    h.register(actor)
    h.run_until_idle()
    inv = h.ask("c", "bump")
    run = h.pending[0]
    effects = h.engine.completed(run.invocation, Value("ok", state=1, checkpoint=True), h.now)
    h.pending.popleft()
    kinds = [type(e).__name__ for e in effects]
    assert kinds == ["Save", "Reply"]
    assert effects[0].durable and effects[0].revision == 1
    h.perform(effects)
    assert h.value(inv) == "ok"


def test_timer_fires_repeatedly_with_noop_and_self_caller() -> None:
    """§11 F49: a 5 ms timer fires repeatedly, noop payload, caller = self; state accumulates."""
    h = EngineHarness()
    actor = Actor("clock", state=0)
    seen = []

    @actor.timer(5)
    def tick(ctx, payload):
        seen.append((payload, ctx.caller.name))
        return Value(state=ctx.state + 1)

    h.register(actor)
    h.run_until_idle()
    h.advance(0.020)
    assert h.engine.state_of("clock")[0] == 4
    assert set(seen) == {(NOOP, "clock")}


def test_timer_action_invocable_by_name() -> None:
    """§11 F50: a timer action can be invoked directly."""
    h = EngineHarness()
    actor = Actor("clock", state=0)
    actor.timer(1000, name="tick")(lambda ctx, p: Value("ticked", state=ctx.state + 1))
    h.register(actor)
    inv = h.ask("clock", "tick")
    h.run_until_idle()
    assert h.value(inv) == "ticked"


def test_stateful_named_actor_warms_up_on_registration() -> None:
    """§11 B13: a stateful NAMED actor activates (init runs) at registration; stateless does not."""
    h = EngineHarness()
    inits = []
    for name, stateful in (("warm", True), ("cold", False)):
        actor = Actor(name, stateful=stateful)
        actor.action(lambda ctx, p, n=name: inits.append(n), name="init")
        h.register(actor)
    h.run_until_idle()
    assert inits == ["warm"]


def test_registration_state_is_initial_state() -> None:
    """§11 B14: the state sent at registration is what get returns before any invocation."""
    h = EngineHarness()
    h.register(Actor("x", state=41))
    inv = h.ask("x", "get")
    h.run_until_idle()
    assert h.value(inv) == 41


def test_pooled_actor_runs_replicas_in_parallel() -> None:
    """D3 intended: POOLED runs up to max_pool_size stateless replicas at once."""
    h = EngineHarness()
    pool = Actor("pool", kind=Kind.POOLED, min_pool_size=1, max_pool_size=3)
    pool.action(lambda ctx, p: p * 2, name="double")
    h.register(pool)
    invs = [h.ask("pool", "double", n) for n in range(5)]
    assert len(h.pending) == 3
    h.run_until_idle()
    assert [h.value(i) for i in invs] == [0, 2, 4, 6, 8]
    assert len(list(h.engine._live("pool"))) == 3


def test_load_failure_fails_waiting_messages_and_keeps_others() -> None:
    """A store that cannot load an actor fails that actor's messages only, naming the error."""
    h = EngineHarness()
    h.fail_loads.add("a")
    h.register(counter("a", deactivate_timeout_ms=10))
    h.register(counter("b"))
    inv_a = h.ask("a", "add", 1)
    inv_b = h.ask("b", "add", 1)
    h.run_until_idle()
    assert "load of 'a' failed" in str(h.reply(inv_a).error)
    assert h.value(inv_b) == 1


def test_pause_holds_and_step_delivers_one(h: EngineHarness) -> None:
    """Step mode: nothing is delivered while paused; each step delivers the oldest message."""
    h.run_until_idle()
    h.engine.pause()
    a = h.ask("counter", "add", 1)
    b = h.ask("counter", "add", 2)
    assert h.pending == deque_empty()
    inv, effects = h.engine.step(h.now)
    assert inv is a
    h.perform(effects)
    h.run_until_idle()
    assert h.value(a) == 1 and h.replies.get(b.id) is None
    h.perform(h.engine.resume(h.now))
    h.run_until_idle()
    assert h.value(b) == 3


def deque_empty():
    from collections import deque

    return deque()


def test_breakpoint_pauses_on_matching_message(h: EngineHarness) -> None:
    h.run_until_idle()
    h.engine.breakpoints.add(("counter", "boom"))
    h.ask("counter", "add", 1)
    h.run_until_idle()
    h.ask("counter", "boom")
    assert h.engine.paused
    assert [i.action for i in h.engine.held()] == ["boom"]
    assert any(e.kind is EventKind.BREAKPOINT for e in h.trace.events())


def test_trace_records_causality_across_pipe() -> None:
    """Every hop emits an event whose cause is the invocation that led to it."""
    h = EngineHarness()
    chain(h, "pipe")
    inv = h.ask("a", "step", "x")
    h.run_until_idle()
    invokes = [e for e in h.trace.events() if e.kind is EventKind.INVOKE]
    assert [(e.actor, e.detail[0]) for e in invokes] == [
        ("a", Via.EXTERNAL),
        ("b", Via.PIPE),
        ("c", Via.PIPE),
    ]
    assert invokes[1].cause == inv.id and invokes[2].cause == invokes[1].invocation


def test_redefinition_applies_to_live_actor_and_keeps_state(h: EngineHarness) -> None:
    """Re-running a cell: the new definition serves the next message; state survives."""
    h.ask("counter", "add", 3)
    h.run_until_idle()
    new = Actor("counter", state=0)
    new.action(lambda ctx, p: Value(ctx.state * 10, state=ctx.state * 10), name="times10")
    h.register(new)
    inv = h.ask("counter", "times10")
    h.run_until_idle()
    assert h.value(inv) == 30
    with pytest.raises(ActionNotFoundError):
        h.ask("counter", "add", 1)
