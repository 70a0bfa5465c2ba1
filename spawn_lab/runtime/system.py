"""``ActorSystem``: one Spawn actor system living inside the kernel (or any Python process).

Every call has a blocking form, which blocks only the calling cell or thread, and an awaitable
form for top-level ``await``. An ask to an idle actor runs its handler in the caller's own
thread or task ("caller runs"), so the common case costs no thread hop at all.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from spawn_lab.core.acl import Policy, load_policies
from spawn_lab.core.clock import Clock, RealClock
from spawn_lab.core.effects import Invocation, Load, Reply, Run, Save, Upsert, Via
from spawn_lab.core.engine import ActorInfo, Effect, Engine
from spawn_lab.core.errors import ActorNotFoundError, ConflictError, SystemStateError
from spawn_lab.core.model import (
    NOOP,
    RESTORE_ACTION,
    ActorDefinition,
    ActorId,
    HandlerKind,
    Kind,
    validate_name,
)
from spawn_lab.core.trace import EventKind, TraceBus, TraceEvent
from spawn_lab.runtime.actors import Actor
from spawn_lab.runtime.driver import Driver, current_invocation
from spawn_lab.runtime.html import EventList
from spawn_lab.runtime.persist import Persister
from spawn_lab.runtime.projections import Projections
from spawn_lab.runtime.refs import ActorRef
from spawn_lab.runtime.revisions import RevisionHistory
from spawn_lab.runtime.waiters import AsyncWaiter, SyncWaiter
from spawn_lab.stores.base import Store, open_store
from spawn_lab.stores.crypto import StateCipher, cipher_from

__all__ = ("ActorSystem", "StepResult")

_OPEN: weakref.WeakSet[ActorSystem] = weakref.WeakSet()
#: The embedded default: one SQLite file in the working directory, shared by its systems.
DEFAULT_STORE = "sqlite:///spawn_lab.db"


@atexit.register
def _close_all() -> None:
    """Flush every open system when the interpreter exits (a kernel restart included)."""
    for system in list(_OPEN):
        try:
            system.close()
        except Exception as exc:  # one system's failure must not cost the others their state
            print(f"spawn_lab: closing {system.name!r} at exit failed: {exc}", file=sys.stderr)


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one :meth:`ActorSystem.step` delivered, and every event it caused."""

    invocation: int
    actor: str
    action: str
    via: str
    events: tuple[TraceEvent, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not any(
            e.kind is EventKind.FAIL and e.invocation == self.invocation for e in self.events
        )

    def __repr__(self) -> str:
        return f"<Step #{self.invocation} {self.via} {self.actor}.{self.action} ok={self.ok}>"


class ActorSystem:
    """A Spawn actor system: register actors, spawn instances, invoke them, and watch the trace.

    ``store`` is a URL (``memory://``, ``sqlite:///file.db``, ``postgresql://...``) or a Store;
    the default is the SQLite file ``spawn_lab.db`` in the working directory, so a restarted
    kernel finds its actors' state again. ``encryption_key`` (or ``SPAWN_STATESTORE_KEY``, the
    base64 of 32 bytes) encrypts stored states with AES-256-GCM.
    ``clock=ManualClock()`` gives virtual time: timers fire only in :meth:`advance`.
    ``durable=True`` stores every state change before its reply.
    ``policies`` are access-control policies, or a folder of ``*.policy`` files (§10.1).
    With a virtual clock, handlers run one at a time, so a replay gives the same trace.
    """

    def __init__(
        self,
        name: str = "spawn-system",
        *,
        store: str | Store | None = DEFAULT_STORE,
        clock: Clock | None = None,
        durable: bool = False,
        timeout: float = 30.0,
        trace_capacity: int = 100_000,
        workers: int = 32,
        policies: Iterable[Policy] | str | Path | None = None,
        encryption_key: bytes | str | StateCipher | None = None,
    ) -> None:
        self.name = validate_name("system", name)
        self.clock: Clock = clock if clock is not None else RealClock()
        self.trace = TraceBus(trace_capacity)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._engine = Engine(self.name, self.trace, catch_up=self.clock.virtual)
        self._engine.durable = durable
        if policies is not None:
            loaded = policies if not isinstance(policies, str | Path) else load_policies(policies)
            self._engine.policies = list(loaded)
        self.store = open_store(store)
        self._owns_store = not isinstance(store, Store)
        self._persister = Persister(
            self.store,
            self.name,
            self.clock,
            self._on_save_error,
            cipher=cipher_from(encryption_key),
        )
        self._projections = Projections(self.store, self.name, on_error=self._on_upsert_error)
        self._driver = Driver(self, workers=1 if self.clock.virtual else workers)
        self._closed = False
        _OPEN.add(self)

    # -- definitions ------------------------------------------------------------------------------

    def register(self, actor: Actor | ActorDefinition) -> ActorRef:
        """Register (or replace) an actor; returns a reference to it."""
        self._check_open()
        defn = actor.definition() if isinstance(actor, Actor) else actor
        with self._lock:
            effects = self._engine.register(defn, self.clock.now())
        self._driver.perform(effects)
        return ActorRef(self, defn.name)

    def spawn(self, name: str, template: str, *, revision: int = 0) -> ActorRef:
        """Create instance ``name`` of the UNNAMED ``template`` (activated on its first message)."""
        self._check_open()
        with self._lock:
            self._engine.spawn(ActorId(name, self.name, template), self.clock.now(), revision)
        return ActorRef(self, name)

    def ref(self, name: str) -> ActorRef:
        """A reference to a registered actor or spawned instance."""
        if self._engine.definition(name) is None:
            raise ActorNotFoundError(f"actor {name!r} not found on actor system {self.name!r}")
        return ActorRef(self, name)

    # -- invocation -------------------------------------------------------------------------------

    def ask(
        self,
        actor: str,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
        register_ref: str = "",
        caller: ActorId | None = None,
    ) -> object:
        """Invoke and wait for the reply, blocking only this thread (a cell, a script).

        ``caller`` names the calling actor for calls that arrive from outside (an SDK's
        InvocationRequest.caller); inside a handler the caller is known already.
        """
        self._check_open()
        if self._driver.in_loop():
            raise SystemStateError(
                f"a blocking ask of {actor!r} from a coroutine handler would stall the system's "
                "loop; use `await system.ask_async(...)` there"
            )
        self._check_not_paused(actor, action)
        waiter = SyncWaiter()
        inv = self._invocation(
            actor, action, payload, metadata, register_ref, waiter, False, caller
        )
        own = self._submit(inv)
        if own is not None:
            driver = self._driver
            try:
                outcome = driver.call_sync(own)
            except BaseException as exc:  # KeyboardInterrupt: free the actor, then re-raise
                self._abandon(own, exc)
                raise
            following = driver.complete(own, outcome)
            if following is not None:
                driver.dispatch(following)
        elif self._engine.paused and self._engine.is_held(inv):
            self._held_while_blocking(inv, waiter)
        return waiter.wait(self.timeout if timeout is None else timeout, f"{actor}.{action}")

    async def ask_async(
        self,
        actor: str,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
        register_ref: str = "",
        caller: ActorId | None = None,
    ) -> object:
        """Invoke and ``await`` the reply on the caller's loop (top-level ``await`` in a cell).

        This is the benchmarked hot path (``ask_async``), hence the inlined steps.
        """
        if self._closed:
            self._check_open()
        if self._engine.paused:
            self._check_not_paused(actor, action)
        waiter = AsyncWaiter(asyncio.get_running_loop())
        inv = self._invocation(actor, action, payload, metadata, register_ref, waiter, True, caller)
        with self._lock:
            effects = self._engine.submit(inv, self.clock.now())
        driver = self._driver
        own = effects[0] if len(effects) == 1 else None
        if (
            own is not None
            and isinstance(own, Run)
            and own.invocation is inv
            and own.kind is not HandlerKind.TASK
            and own.kind is not HandlerKind.VIEW
        ):
            try:
                if own.kind is HandlerKind.SYNC:
                    outcome = driver.call_sync(own)
                else:
                    outcome = await driver.call_async(own)
            except BaseException as exc:  # cancelled or interrupted: free the actor, go on
                self._abandon(own, exc)
                raise
            effects = driver.completed(own, outcome)
            if len(effects) == 1 and driver.quiet():
                reply = effects[0]
                if isinstance(reply, Reply) and reply.waiter is waiter:
                    # the usual case: the only effect is our own answer, so hand it back
                    # directly instead of resolving a waiter we are about to read
                    if reply.ok:
                        return reply.value
                    raise cast(BaseException, reply.error)
            following = driver.settle(own, effects)
            if following is not None:
                driver.dispatch(following)
            answered = waiter.answered()
            if answered is not None:  # no hop left to wait for
                ok, value, error = answered
                if ok:
                    return value
                raise cast(BaseException, error)
        elif effects or self._engine.wake:
            driver.perform(effects)
        return await waiter.wait(self.timeout if timeout is None else timeout, f"{actor}.{action}")

    def tell(
        self,
        actor: str,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        delay: float = 0.0,
        register_ref: str = "",
        caller: ActorId | None = None,
    ) -> int:
        """Invoke without waiting (``async=true``), ``delay`` seconds from now; returns its id."""
        self._check_open()
        current_caller, cause = self._caller()
        caller = caller or current_caller
        now = self.clock.now()
        with self._lock:
            inv = Invocation(
                self._engine.new_id(),
                actor,
                action,
                payload,
                caller=caller,
                metadata=dict(metadata) if metadata else None,
                asynchronous=True,
                cause=cause,
                register_ref=register_ref,
                scheduled_to=now + delay if delay > 0 else 0.0,
                via=Via.SCHEDULED if delay > 0 else Via.EXTERNAL,
            )
            effects = self._engine.submit(inv, now)
        self._driver.perform(effects)
        return inv.id

    def _invocation(
        self,
        actor: str,
        action: str,
        payload: object,
        metadata: Mapping[str, str] | None,
        register_ref: str,
        waiter: Any,
        in_task: bool,
        given_caller: ActorId | None = None,
    ) -> Invocation:
        current = current_invocation.get()
        if current is None:
            caller, cause = None, 0
        else:
            if current[1] == actor and not in_task:
                raise SystemStateError(
                    f"actor {actor!r} cannot ask itself and wait: its own message would queue "
                    "behind the one running now. Use tell() or a side effect instead"
                )
            caller, cause = self._caller()
        return Invocation(
            next(self._engine._ids),
            actor,
            action,
            payload,
            caller=given_caller or caller,
            metadata=dict(metadata) if metadata else None,
            cause=cause,
            register_ref=register_ref,
            waiter=waiter,
        )

    def _abandon(self, own: Run, exc: BaseException) -> None:
        """The caller running its own message was cancelled or interrupted: answer that message
        with an error, so the actor is free, and hand its next message to the driver."""
        inv = own.invocation
        error = SystemStateError(f"{inv.actor}.{inv.action} was {type(exc).__name__}")
        following = self._driver.complete(own, error)
        if following is not None:
            self._driver.dispatch(following)

    def _caller(self) -> tuple[ActorId | None, int]:
        current = current_invocation.get()
        if current is None:
            return None, 0
        inv, _ = current
        entity = inv.entity
        return (entity.id if entity is not None else None), inv.id

    def _submit(self, inv: Invocation, *, allow_async: bool = False) -> Run | None:
        """Submit; if the engine starts the caller's own message at once, return it to run here."""
        with self._lock:
            effects = self._engine.submit(inv, self.clock.now())
        if any(isinstance(e, Load) and e.actor_id.name == inv.actor for e in effects):
            # the target is activating: load it here, so that (if nothing else is queued) its
            # first message is ours to run too, rather than a hop to the pool (which, under
            # virtual time, has one worker that may be the very thread asking)
            loaded: list[Effect] = []
            for effect in effects:
                if isinstance(effect, Load) and effect.actor_id.name == inv.actor:
                    loaded.extend(self._driver.load(effect))
                else:
                    loaded.append(effect)
            effects = loaded
        own: Run | None = None
        for i, effect in enumerate(effects):
            if isinstance(effect, Run) and effect.invocation is inv:
                kind = effect.kind
                if kind is HandlerKind.SYNC or (allow_async and kind is HandlerKind.ASYNC):
                    own = effect
                    del effects[i]
                break
        if effects or self._engine.wake:
            self._driver.perform(effects)
        return own

    def _check_not_paused(self, actor: str, action: str) -> None:
        if self._engine.paused and threading.current_thread() is threading.main_thread():
            raise SystemStateError(
                f"the system is paused, so a blocking ask of {actor}.{action} would never return: "
                "use tell() and step(), or resume() first"
            )

    def _held_while_blocking(self, inv: Invocation, waiter: SyncWaiter) -> None:
        if threading.current_thread() is threading.main_thread():
            waiter.resolve(
                False,
                NOOP,
                SystemStateError(
                    f"breakpoint: {inv.actor}.{inv.action} (invocation #{inv.id}) is held; "
                    "call step() to deliver it, or resume()"
                ),
            )

    # -- inspection -----------------------------------------------------------------------------

    def actors(self) -> list[ActorInfo]:
        """Every actor, active or passivated, including ones only the store remembers."""
        with self._lock:
            infos = self._engine.actors()
        known = {i.actor_id.name for i in infos}
        for name in self.store.actors(self.name):
            if name not in known:
                infos.append(ActorInfo(ActorId(name, self.name), self._kind_of(name), False, False))
        return infos

    def _kind_of(self, name: str) -> Kind:
        defn = self._engine.definition(name)
        return defn.settings.kind if defn else Kind.UNKNOWN

    def definition(self, name: str) -> ActorDefinition:
        defn = self._engine.definition(name)
        if defn is None:
            raise ActorNotFoundError(f"actor {name!r} not found on actor system {self.name!r}")
        return defn

    def state(self, name: str) -> object:
        """An actor's current state: in memory if active, else stored, else its initial state."""
        state, _, _ = self.inspect(name)
        return state

    def inspect(self, name: str) -> tuple[object, dict[str, str], int]:
        """``(state, tags, revision)`` of an actor, active or not."""
        with self._lock:
            live = self._engine.state_of(name)
        if live is not None:
            state, tags, revision = live
            return state, dict(tags), revision
        defn = self.definition(name)
        if defn.settings.stateful:
            loaded = self._persister.load(Load(ActorId(name, self.name), name))
            if loaded is not None:
                return loaded[0], dict(loaded[1]), loaded[2]
        return defn.initial_state, dict(defn.initial_tags), 0

    def mailbox(self, name: str) -> list[Invocation]:
        """Messages waiting for ``name`` (the running one first)."""
        with self._lock:
            return self._engine.mailbox_of(name)

    def events(self, since: int = 0) -> EventList:
        """The trace, oldest first (a list that shows as a table in a notebook)."""
        return EventList(self.trace.events(since))

    def crash(self, name: str) -> None:
        """Crash an actor on purpose (for debugging): its unsaved state is lost, and the next
        message reactivates it from the last stored snapshot."""
        self.definition(name)
        with self._lock:
            effects = self._engine.crash(name, self.clock.now())
        self._driver.perform(effects)

    def deactivate(self, name: str) -> None:
        """Deactivate an idle actor now, as its idle timeout would (its state is saved)."""
        with self._lock:
            effects = self._driver.stage(self._engine.deactivate(name, self.clock.now()))
        self._driver.perform(effects)

    # -- revisions and time travel -------------------------------------------------------------

    def revisions(self, name: str) -> RevisionHistory:
        """Every stored revision of an actor, oldest first, with timestamps."""
        self.definition(name)
        self._persister.flush()
        return RevisionHistory(name, self.store.revisions(self.name, name))

    def state_at(
        self, name: str, *, revision: int | None = None, when: float | None = None
    ) -> object:
        """The stored state of ``name`` at ``revision``, or as it was at Unix time ``when``."""
        if (revision is None) == (when is None):
            raise ValueError("give exactly one of revision= or when=")
        self._persister.flush()
        if revision is not None:
            snap = self.store.load(self.name, name, revision)
            what = f"revision {revision}"
        else:
            snap = self.store.load_at(self.name, name, cast(float, when))
            what = f"time {when}"
        if snap is None or (revision is not None and snap.revision != revision):
            raise ActorNotFoundError(f"actor {name!r} has no stored state at {what}")
        return self._persister.decode(snap)

    def restore(self, name: str, revision: int) -> int:
        """Make revision ``revision`` current again, as a new revision; returns the new number.

        The restore is a message in the actor's mailbox, so it never races a running handler,
        and it is stored durably before this call returns. History is never rewritten.
        """
        self._persister.flush()
        snap = self.store.load(self.name, name, revision)
        if snap is None or snap.revision != revision:
            raise ActorNotFoundError(f"actor {name!r} has no stored revision {revision}")
        state = self._persister.decode(snap)
        result = self.ask(name, RESTORE_ACTION, (state, dict(snap.tags)))
        return cast(int, result)

    def fork(self, name: str, *, at: float | None = None) -> ActorSystem:
        """A new system ``name`` with the same actors and every actor's history up to ``at``.

        The fork shares this system's store (so it is persisted alongside) but nothing else:
        what happens in the fork never touches this system.
        """
        self._persister.flush()
        self.store.fork(self.name, name, at)
        fork = ActorSystem(
            name,
            store=self.store,
            clock=self.clock if not self.clock.virtual else None,
            durable=self.durable,
            timeout=self.timeout,
            encryption_key=self._persister.cipher,
        )
        with self._lock:
            definitions = [self._engine.definition(i.actor_id.name) for i in self._engine.actors()]
        for defn in definitions:
            if defn is not None and defn.name in self._engine._defs:
                fork.register(defn)
        return fork

    def projection_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows a PROJECTION actor has upserted into its table (§8.4)."""
        self.definition(name)
        return self._projections.rows(name)

    # -- stepping and time ------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._engine.paused

    def pause(self) -> None:
        """Hold every new message until step() or resume()."""
        with self._lock:
            self._engine.pause()

    def resume(self) -> None:
        """Deliver what is held and stop holding."""
        with self._lock:
            effects = self._engine.resume(self.clock.now())
        self._driver.perform(effects)

    def step(self, timeout: float | None = None) -> StepResult | None:
        """Deliver exactly one held message and wait until it (and its effects) settle."""
        since = self.trace_seq()
        with self._lock:
            inv, effects = self._engine.step(self.clock.now())
        if inv is None:
            return None
        self._driver.perform(effects)
        self._wait_idle(timeout)
        return StepResult(inv.id, inv.actor, inv.action, inv.via.value, tuple(self.events(since)))

    def held(self) -> list[Invocation]:
        """Messages waiting for a step, oldest first."""
        with self._lock:
            return self._engine.held()

    def run_until_idle(self, timeout: float | None = None) -> int:
        """Deliver until nothing is queued or running (stepping through held messages if paused).

        Returns how many held messages were stepped.
        """
        steps = 0
        self._wait_idle(timeout)
        while self._engine.paused and self.step(timeout) is not None:
            steps += 1  # step() itself waits until what it delivered has settled
        return steps

    def break_on(self, actor: str = "*", action: str = "*") -> None:
        """Pause when a message for ``actor`` (and ``action``) arrives; ``*`` matches any."""
        with self._lock:
            self._engine.breakpoints.add((actor, action))

    def clear_breakpoints(self) -> None:
        with self._lock:
            self._engine.breakpoints.clear()

    @property
    def breakpoints(self) -> set[tuple[str, str]]:
        return set(self._engine.breakpoints)

    def advance(self, seconds: float) -> int:
        """Move virtual time forward, firing each due timer in order and settling in between.

        Returns how many deadlines fired. Needs ``clock=ManualClock()``.
        """
        clock = self.clock
        if not clock.virtual:
            raise SystemStateError(
                "advance() moves virtual time: open the system with clock=ManualClock()"
            )
        target = clock.now() + seconds
        fired = 0
        while True:
            deadline = self._engine.next_deadline()
            if deadline is None or deadline > target:
                break
            clock.set(max(deadline, clock.now()))  # type: ignore[attr-defined]
            with self._lock:
                effects = self._driver.stage(self._engine.advance(clock.now(), limit=1))
            fired += 1
            self._driver.perform(effects)
            self._wait_idle(None)
        clock.set(target)  # type: ignore[attr-defined]
        return fired

    def _wait_idle(self, timeout: float | None) -> None:
        limit = self.timeout if timeout is None else timeout
        if not self._driver.wait_idle(limit):
            raise SystemStateError(f"the system did not become idle within {limit} s")

    def trace_seq(self) -> int:
        raw = self.trace.raw()
        return raw[-1][0] if raw else 0

    # -- persistence hooks ----------------------------------------------------------------------

    def _on_upsert_error(self, upsert: Upsert, error: BaseException) -> None:
        """An upsert into a projection table failed; it is retried before the next one."""
        detail = {"error": str(error), "upsert": True}
        self.trace.emit(self.clock.now(), EventKind.FAIL, 0, 0, upsert.actor_id.name, "", detail)

    def _on_save_error(self, save: Save, error: BaseException) -> None:
        """A write-behind save failed. The persister retries it (a disk may recover); a conflict
        with another writer instead reloads the actor from the store."""
        conflict = isinstance(error, ConflictError)
        if not conflict:
            detail = {"error": str(error), "save": True}
            self.trace.emit(self.clock.now(), EventKind.FAIL, 0, 0, save.actor_id.name, "", detail)
            return
        with self._lock:
            effects = self._engine.save_failed(
                save.entity_key, error, self.clock.now(), conflict=True
            )
        self._driver.perform(effects)

    @property
    def durable(self) -> bool:
        return self._engine.durable

    # -- lifecycle ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SystemStateError(f"actor system {self.name!r} is closed")

    def close(self) -> None:
        """Save every stateful actor, stop the driver and close the store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        with self._lock:
            effects = self._engine.flush(self.clock.now())
        try:
            self._driver.perform(effects)
            self._projections.flush()
        finally:
            try:
                self._persister.close(close_store=self._owns_store)
            finally:
                self._driver.stop()

    def __enter__(self) -> ActorSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("paused" if self.paused else "running")
        return f"<ActorSystem {self.name!r} {state} store={self.store.url}>"

    def _repr_html_(self) -> str:
        from spawn_lab.runtime.html import system_html

        return system_html(self)
