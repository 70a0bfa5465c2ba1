"""The one interpreter of effects: runs handlers, loads and saves state, answers, arms timers.

It holds no policy; every decision was made by the engine. It owns an event loop on its own
thread (so a blocking call from a notebook cell never deadlocks the kernel's loop), a thread
pool that drains mailboxes of actors with plain-function handlers, and a small executor for
TASK actors, so CPU-heavy work never runs on the loop that serves timers and coroutine handlers.

Any thread may call :meth:`Driver.perform`. A caller that asked an idle actor runs that one
handler itself ("caller runs"); everything else is handed to the loop or the pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from spawn_lab.core.effects import Invocation, Load, Reply, Run, Save, Upsert
from spawn_lab.core.engine import Effect, handler_error, store_error_for
from spawn_lab.core.errors import ConflictError, InvocationError, SpawnLabError, StoreError
from spawn_lab.core.model import HandlerKind, Kind, Value
from spawn_lab.runtime.actors import Context, as_value

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("Driver", "current_invocation")

#: The invocation whose handler runs in this thread or task (for causality and self-ask checks).
current_invocation: contextvars.ContextVar[tuple[Invocation, Any] | None] = contextvars.ContextVar(
    "spawn_lab_current_invocation", default=None
)


def _handler_error(run: Run, exc: Exception) -> BaseException:
    """The asker's error, with a traceback that starts in the handler, not in spawn_lab."""
    frames = exc.__traceback__.tb_next if exc.__traceback__ else None
    text = "".join(traceback.format_exception(type(exc), exc, frames))
    return handler_error(run.actor_id, run.invocation.action, exc, text, run.invocation.id)


class Driver:
    """Performs effects for one :class:`ActorSystem`."""

    def __init__(self, system: ActorSystem, *, workers: int = 32, task_workers: int = 4) -> None:
        self._system = system
        self._engine = system._engine
        self._lock = system._lock
        self._clock = system.clock
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name=f"spawn-lab-{system.name}", daemon=True
        )
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix=f"spawn-lab-{system.name}")
        self.task_pool = ThreadPoolExecutor(
            task_workers, thread_name_prefix=f"spawn-lab-task-{system.name}"
        )
        self._armed: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle = threading.Condition(self._lock)
        self._idle_waiters = 0
        self._thread.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def in_loop(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def stop(self) -> None:
        """Stop the loop and the pools; handlers still running finish on their own."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        for pool in {self.pool, self.task_pool}:
            pool.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self.loop.close()

    # -- interpreting -----------------------------------------------------------------------------

    def perform(self, effects: Iterable[Effect]) -> None:
        """Carry out effects in order. Runs are dispatched; everything else happens here.

        A durable save that fails turns the reply it precedes into that failure.
        """
        failed: dict[int, BaseException] = {}
        for effect in effects:
            if isinstance(effect, Reply):
                error = failed.get(effect.invocation) if failed else None
                if error is not None:
                    effect.waiter.resolve(False, None, error)
                else:
                    effect.waiter.resolve(effect.ok, effect.value, effect.error)
            elif isinstance(effect, Run):
                self.dispatch(effect)
            elif isinstance(effect, Save):
                self._save(effect, failed)
            elif isinstance(effect, Upsert):
                self._system._projections.upsert(effect)
            else:
                self._load(effect)
        self.after()

    def stage(self, effects: list[Effect]) -> list[Effect]:
        """Hand write-behind saves to the persister now, while the caller holds the system lock.

        A deactivation's save must be visible to reads before any other thread can reactivate
        the actor (which needs the same lock), or that activation would load a stale state.
        Returns the effects left to perform.
        """
        persister = self._system._persister
        rest: list[Effect] = []
        for effect in effects:
            if isinstance(effect, Save) and not effect.durable:
                persister.save(effect)
            else:
                rest.append(effect)
        return rest

    def after(self) -> None:
        """Re-arm the deadline timer if a new earliest deadline appeared; wake idle waiters."""
        engine = self._engine
        if engine.wake:
            engine.wake = False  # cleared before reading the heap, so no deadline is missed
            deadline = engine.next_deadline()
            if (
                deadline is not None
                and not self._clock.virtual
                and (self._armed is None or deadline < self._armed)
            ):
                self._armed = deadline
                self.loop.call_soon_threadsafe(self._arm, deadline)
        if self._idle_waiters and engine.idle:
            with self._idle:
                self._idle.notify_all()

    def _save(self, save: Save, failed: dict[int, BaseException]) -> None:
        try:
            self._system._persister.save(save)
        except SpawnLabError as exc:
            error = exc if isinstance(exc, StoreError) else store_error_for(save.actor_id, exc)
            conflict = isinstance(error, ConflictError)
            with self._lock:
                effects = self._engine.save_failed(
                    save.entity_key, error, self._clock.now(), conflict=conflict
                )
            if save.invocation:
                failed[save.invocation] = error
            self.perform(effects)

    def _load(self, load: Load) -> None:
        self.perform(self.load(load))

    def load(self, load: Load) -> list[Effect]:
        """Load an actor's state now, in this thread; return the effects still to perform."""
        snapshot = error = None
        try:
            snapshot = self._system._persister.load(load)
        except SpawnLabError as exc:
            error = exc if isinstance(exc, StoreError) else store_error_for(load.actor_id, exc)
        with self._lock:
            effects = self._engine.loaded(
                load.entity_key,
                snapshot,
                error,
                self._clock.now(),
                rewound=load.revision > 0 and snapshot is not None and snapshot[2] != load.revision,
            )
        return effects

    def dispatch(self, run: Run) -> None:
        """Start a Run where its kind belongs: the pool, the loop or the task executor."""
        if run.kind is HandlerKind.SYNC or run.kind is HandlerKind.VIEW:
            self.pool.submit(self._drain, run)
        elif run.kind is HandlerKind.TASK:
            self.task_pool.submit(self._drain, run)
        elif self.in_loop():
            self.loop.create_task(self._drain_async(run))
        else:
            self.loop.call_soon_threadsafe(self._spawn_async, run)

    def _spawn_async(self, run: Run) -> None:
        self.loop.create_task(self._drain_async(run))

    # -- running handlers -----------------------------------------------------------------------

    def context_of(self, run: Run) -> Context:
        """The Context a handler gets for ``run`` (a fresh one: handlers may keep it)."""
        inv = run.invocation
        return Context(
            run.state,
            run.tags,
            inv.metadata,
            inv.caller,
            run.actor_id,
            inv.action,
            inv.id,
            self._system,
        )

    def call_sync(self, run: Run) -> Value | BaseException:
        """Run a plain-function handler in this thread; an exception becomes the outcome."""
        token = current_invocation.set((run.invocation, run.entity_key))
        try:
            if run.kind is HandlerKind.VIEW:
                return self._view(run)
            inv = run.invocation
            handler = run.definition.host.handlers[inv.action]  # type: ignore[attr-defined]
            result = handler(self.context_of(run), inv.payload)
            if type(result) is Value:
                return result
            if asyncio.iscoroutine(result):
                if run.kind is not HandlerKind.TASK:
                    result.close()
                    raise TypeError("a handler marked synchronous returned a coroutine")
                result = asyncio.run(result)  # a TASK's coroutine runs on its own worker thread
            return as_value(result)
        except Exception as exc:  # the handler's failure is the asker's answer, not ours
            return _handler_error(run, exc)
        finally:
            current_invocation.reset(token)

    def _view(self, run: Run) -> Value | BaseException:
        """A view is a query, not a handler: its failure names the view, with no traceback."""
        inv = run.invocation
        try:
            return as_value(self._system._projections.run_view(run))
        except SpawnLabError as exc:
            return InvocationError(
                f"view {run.actor_id.name}.{inv.action} failed: {exc}",
                actor=run.actor_id.name,
                action=inv.action,
                invocation=inv.id,
            )

    async def call_async(self, run: Run) -> Value | BaseException:
        """Run a coroutine handler (or a remote host's call) on the current loop."""
        token = current_invocation.set((run.invocation, run.entity_key))
        try:
            host = run.definition.host
            call = getattr(host, "call_async", None)
            if call is not None:
                return as_value(await call(run, self.context_of(run)))
            handler = host.handler(run.invocation.action)  # type: ignore[attr-defined]
            return as_value(await handler(self.context_of(run), run.invocation.payload))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _handler_error(run, exc)
        finally:
            current_invocation.reset(token)

    def complete(self, run: Run, outcome: Value | BaseException) -> Run | None:
        """Report a finished Run; perform the effects; return the actor's next Run if it is ours."""
        return self.settle(run, self.completed(run, outcome))

    def completed(self, run: Run, outcome: Value | BaseException) -> list[Effect]:
        """Report a finished Run to the engine; the effects are still to be performed."""
        with self._lock:
            effects = self._engine.completed(run.invocation, outcome, self._clock.now())
            if run.definition.settings.kind is Kind.PROJECTION:
                self._system._projections.stage(effects)  # in engine order, before any read
        return effects

    def quiet(self) -> bool:
        """True when performing nothing would miss nothing: no new deadline, nobody idle-waits."""
        return not self._engine.wake and not self._idle_waiters

    def settle(self, run: Run, effects: list[Effect]) -> Run | None:
        """Perform a completion's effects; return the actor's next Run if it is ours to run."""
        following: Run | None = None
        for i, effect in enumerate(effects):
            if (
                isinstance(effect, Run)
                and effect.entity_key == run.entity_key
                and effect.kind is run.kind
            ):
                following = effect
                del effects[i]
                break
        self.perform(effects)
        return following

    def _drain(self, run: Run | None) -> None:
        """Pool thread: run an actor's plain-function messages back to back while they last."""
        while run is not None:
            run = self.complete(run, self.call_sync(run))

    async def _drain_async(self, run: Run | None) -> None:
        while run is not None:
            run = self.complete(run, await self.call_async(run))

    # -- time -----------------------------------------------------------------------------------

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, deadline - self._clock.now())
        self._timer = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed = None
        try:
            with self._lock:
                effects = self.stage(self._engine.advance(self._clock.now()))
            self.perform(effects)
        finally:  # whatever performing did, the next deadline must still be armed
            deadline = self._engine.next_deadline()
            if deadline is not None and self._armed is None:
                self._armed = deadline
                self._arm(deadline)

    def wait_idle(self, timeout: float, done: Callable[[], bool] | None = None) -> bool:
        """Block until the engine is idle (and ``done()`` holds); False on timeout."""
        check = done or (lambda: True)
        with self._idle:
            self._idle_waiters += 1
            try:
                return self._idle.wait_for(lambda: self._engine.idle and check(), timeout)
            finally:
                self._idle_waiters -= 1
