"""Property-based checks of the engine's invariants (design.md, "Tests").

A hypothesis state machine sends asks and tells (some failing, some routing, some with side
effects), runs pending handlers in any order and moves virtual time, and checks after every step:

* at most one action in flight per actor;
* every ask is answered exactly once (checked once everything has settled);
* revisions of every actor only increase;
* a side effect never delays the caller's reply.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from spawn_lab.core.effects import Reply, Run, Save
from spawn_lab.core.model import Pipe, SideEffect, Value
from spawn_lab.runtime.actors import Actor
from spawn_lab.testing import EngineHarness

ACTORS = ("a", "b", "c")


def make_actor(name: str) -> Actor:
    actor = Actor(name, state=0, snapshot_interval_ms=50, deactivate_timeout_ms=200)

    @actor.action
    def add(ctx, n):
        return Value(ctx.state + n, state=ctx.state + n)

    @actor.action
    def fail(ctx, payload):
        raise RuntimeError("planned failure")

    @actor.action
    def effect(ctx, target):
        return Value("done", effects=(SideEffect(target, "add", 1),))

    @actor.action
    def pipe(ctx, target):
        return Value(1, pipe=Pipe(target, "add"))

    @actor.action
    def save(ctx, n):
        return Value(n, state=ctx.state + n, checkpoint=True)

    return actor


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = EngineHarness()
        for name in ACTORS:
            self.h.register(make_actor(name))
        self.asks: list[int] = []
        self.effect_asks: set[int] = set()
        original = self.h.perform

        def checked_perform(effects: list) -> None:  # type: ignore[type-arg]
            self.check_batch(effects)
            original(effects)

        self.h.perform = checked_perform  # type: ignore[method-assign]

    def check_batch(self, effects: list) -> None:  # type: ignore[type-arg]
        """A side-effect source's reply is in the very batch its completion produced."""
        for effect in effects:
            if isinstance(effect, Reply) and effect.invocation in self.effect_asks:
                self.effect_asks.discard(effect.invocation)

    @rule(
        actor=st.sampled_from(ACTORS),
        action=st.sampled_from(["add", "fail", "effect", "pipe", "save", "get"]),
        dest=st.sampled_from(ACTORS),
        ask=st.booleans(),
    )
    def send(self, actor: str, action: str, dest: str, ask: bool) -> None:
        payload: object = 1 if action in ("add", "save") else dest
        if ask:
            inv = self.h.ask(actor, action, payload)
            self.asks.append(inv.id)
        else:
            self.h.tell(actor, action, payload)

    @precondition(lambda self: bool(self.h.pending))
    @rule(data=st.data())
    def run_some_handler(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.h.pending) - 1))
        run = self.h.pending[index]
        if run.invocation.action == "effect" and run.invocation.waiter is not None:
            self.effect_asks.add(run.invocation.id)
        self.h.run_one(lambda runs: index)
        assert run.invocation.id not in self.effect_asks, "side effect delayed the reply"

    @rule(seconds=st.sampled_from([0.01, 0.05, 0.3]))
    def advance(self, seconds: float) -> None:
        self.h.advance(seconds)

    @invariant()
    def one_in_flight_per_actor(self) -> None:
        keys = [run.entity_key for run in self.h.pending if isinstance(run, Run)]
        assert len(keys) == len(set(keys)), f"two actions in flight: {keys}"

    @invariant()
    def revisions_only_increase(self) -> None:
        last: dict[str, int] = {}
        for save in self.h.saves:
            assert isinstance(save, Save)
            previous = last.get(save.actor_id.name, 0)
            assert save.revision >= previous, f"revision went back for {save.actor_id.name}"
            last[save.actor_id.name] = save.revision

    def teardown(self) -> None:
        self.h.engine.paused = False
        self.h.run_until_idle()
        for ask in self.asks:
            replies = self.h.replies.get(ask, [])
            assert len(replies) == 1, f"ask #{ask} answered {len(replies)} times"


EngineMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_engine_invariants = EngineMachine.TestCase
