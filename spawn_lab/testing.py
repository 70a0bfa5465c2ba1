"""A public test kit: drive the pure engine by hand, one handler at a time, in virtual time.

``EngineHarness`` is a second, tiny interpreter of the engine's effects. It runs everything in
the calling thread and in the order you choose, which is what makes scripted tests and
property-based tests of Spawn's semantics fast and deterministic::

    h = EngineHarness()
    h.register(counter)                 # an Actor or an ActorDefinition
    inv = h.ask("counter", "add", 1)
    h.run_until_idle()
    assert h.reply(inv).value == 1
"""

from __future__ import annotations

import asyncio
import traceback
from collections import deque
from collections.abc import Callable, Mapping

from spawn_lab.core.clock import ManualClock
from spawn_lab.core.effects import Invocation, Load, Reply, Run, Save, Status, Via
from spawn_lab.core.engine import Effect, Engine, handler_error
from spawn_lab.core.model import NOOP, ActorDefinition, Value
from spawn_lab.core.trace import EventKind, TraceBus, TraceEvent
from spawn_lab.runtime.actors import Actor, Context, as_value

__all__ = ("EngineHarness", "RecordingObserver")


class RecordingObserver:
    """A trace subscriber that keeps every event, for assertions."""

    def __init__(self, bus: TraceBus) -> None:
        self.events: list[TraceEvent] = []
        self.unsubscribe = bus.subscribe(lambda raw: self.events.append(TraceEvent.of(raw)))

    def kinds(self, kind: EventKind) -> list[TraceEvent]:
        return [e for e in self.events if e.kind is kind]


class EngineHarness:
    """Runs an :class:`Engine` synchronously; Runs wait in ``pending`` until you run them."""

    def __init__(self, system: str = "test", *, clock: ManualClock | None = None) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self.trace = TraceBus()
        self.engine = Engine(system, self.trace, catch_up=True)
        self.pending: deque[Run] = deque()
        self.replies: dict[int, list[Reply]] = {}
        self.saves: list[Save] = []
        self.stored: dict[str, tuple[object, Mapping[str, str], int]] = {}
        self.fail_loads: set[str] = set()
        self.calls: list[tuple[str, str, Context]] = []

    @property
    def now(self) -> float:
        return self.clock.now()

    def register(self, actor: Actor | ActorDefinition) -> None:
        defn = actor.definition() if isinstance(actor, Actor) else actor
        self.perform(self.engine.register(defn, self.now))

    def ask(
        self,
        actor: str,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        register_ref: str = "",
    ) -> Invocation:
        """Submit an ask; its reply lands in ``replies`` when the handler has run."""
        return self._submit(actor, action, payload, False, metadata, register_ref, 0.0)

    def tell(
        self,
        actor: str,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        register_ref: str = "",
        delay: float = 0.0,
    ) -> Invocation:
        """Submit a tell, or a delayed one (``delay`` seconds of virtual time)."""
        return self._submit(actor, action, payload, True, metadata, register_ref, delay)

    def _submit(
        self,
        actor: str,
        action: str,
        payload: object,
        asynchronous: bool,
        metadata: Mapping[str, str] | None,
        register_ref: str,
        delay: float,
    ) -> Invocation:
        inv = Invocation(
            self.engine.new_id(),
            actor,
            action,
            payload,
            metadata=dict(metadata) if metadata else None,
            asynchronous=asynchronous,
            register_ref=register_ref,
            scheduled_to=self.now + delay if delay else 0.0,
            via=Via.SCHEDULED if delay else Via.EXTERNAL,
        )
        inv.waiter = None if asynchronous else inv.id
        self.perform(self.engine.submit(inv, self.now))
        return inv

    def perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Run):
                self.pending.append(effect)
            elif isinstance(effect, Reply):
                self.replies.setdefault(effect.invocation, []).append(effect)
                if effect.waiter != effect.invocation:
                    self.replies.setdefault(effect.waiter, []).append(effect)
            elif isinstance(effect, Save):
                self.saves.append(effect)
                self.stored[effect.actor_id.name] = (
                    effect.state,
                    dict(effect.tags),
                    effect.revision,
                )
            elif isinstance(effect, Load):
                self._load(effect)

    def _load(self, load: Load) -> None:
        name = load.actor_id.name
        error = RuntimeError(f"load of {name!r} failed") if name in self.fail_loads else None
        snapshot = None if error else self.stored.get(name)
        self.perform(self.engine.loaded(load.entity_key, snapshot, error, self.now))

    def run_one(self, pick: Callable[[list[Run]], int] | None = None) -> Run | None:
        """Run one pending handler (the oldest, or the one ``pick`` chooses) and apply it."""
        if not self.pending:
            return None
        index = pick(list(self.pending)) if pick else 0
        run = self.pending[index]
        del self.pending[index]
        outcome = self._call(run)
        self.perform(self.engine.completed(run.invocation, outcome, self.now))
        return run

    def _call(self, run: Run) -> Value | BaseException:
        inv = run.invocation
        ctx = Context(
            run.state, run.tags, inv.metadata, inv.caller, run.actor_id, inv.action, inv.id
        )
        self.calls.append((run.actor_id.name, inv.action, ctx))
        try:
            result = run.definition.host.handler(inv.action)(ctx, inv.payload)  # type: ignore[attr-defined]
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            return as_value(result)
        except Exception as exc:
            return handler_error(run.actor_id, inv.action, exc, traceback.format_exc())

    def run_until_idle(self, max_steps: int = 100_000) -> int:
        steps = 0
        while self.pending and steps < max_steps:
            self.run_one()
            steps += 1
        return steps

    def advance(self, seconds: float) -> None:
        """Move virtual time, firing deadlines one by one and running to idle after each."""
        target = self.now + seconds
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.set(max(deadline, self.now))
            self.perform(self.engine.advance(self.now, limit=1))
            self.run_until_idle()
        self.clock.set(target)

    def reply(self, inv: Invocation | int) -> Reply:
        """The one reply to an ask; fails loudly if there were none or several."""
        key = inv.id if isinstance(inv, Invocation) else inv
        replies = self.replies.get(key, [])
        if len(replies) != 1:
            raise AssertionError(
                f"invocation #{key} has {len(replies)} replies, expected exactly 1"
            )
        return replies[0]

    def value(self, inv: Invocation | int) -> object:
        reply = self.reply(inv)
        if not reply.ok:
            raise AssertionError(f"invocation failed: {reply.error}")
        return reply.value

    def statuses(self, actor: str) -> list[Status]:
        return [s.status for s in self.saves if s.actor_id.name == actor]
