"""The ActorSystem with its real driver thread, pools and loop: what a notebook user observes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

import spawn_lab as sl
from spawn_lab.core.trace import EventKind


@pytest.fixture
def system() -> Iterator[sl.ActorSystem]:
    with sl.ActorSystem("test", timeout=10) as s:
        yield s


def make_counter(name: str = "counter", **kw: object) -> sl.Actor:
    actor = sl.Actor(name, state=0, **kw)  # type: ignore[arg-type]

    @actor.action
    def add(ctx, n):
        return sl.Value(ctx.state + n, state=ctx.state + n)

    @actor.action
    async def add_later(ctx, n):
        await asyncio.sleep(0)
        return sl.Value(ctx.state + n, state=ctx.state + n)

    @actor.action
    def boom(ctx, payload):
        raise KeyError("missing-thing")

    return actor


def wait_for(predicate, timeout: float = 10.0) -> None:
    """Bounded polling for effects that happen on other threads."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the bound")
        time.sleep(0.005)


def test_ask_sync_and_async_share_state(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    assert ref.ask("add", 2) == 2
    assert asyncio.run(ref.ask_async("add", 3)) == 5
    assert asyncio.run(ref.ask_async("add_later", 1)) == 6
    assert ref.ask("add_later", 1) == 7
    assert ref.state == 7


def test_tell_is_processed_in_order(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    for n in range(100):
        ref.tell("add", n)
    system.run_until_idle()
    assert ref.state == sum(range(100))


def test_many_threads_asking_one_actor_lose_nothing(system: sl.ActorSystem) -> None:
    """At most one action in flight per actor: concurrent asks never lose an update."""
    ref = system.register(make_counter())
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(300):
                ref.ask("add", 1)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert ref.state == 2400


def test_handler_error_has_traceback_and_others_unaffected(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    other = system.register(make_counter("other"))
    with pytest.raises(sl.InvocationError) as info:
        ref.ask("boom")
    assert "KeyError" in str(info.value) and "missing-thing" in info.value.remote_traceback
    assert ref.ask("add", 1) == 1
    assert other.ask("add", 5) == 5
    assert any(e.kind is EventKind.FAIL for e in system.events())


def test_unknown_actor_and_action_fail_fast(system: sl.ActorSystem) -> None:
    """Raised by the submit itself: a wait for a reply would end in a timeout error instead."""
    system.register(make_counter())
    with pytest.raises(sl.ActorNotFoundError):
        system.ask("ghost", "x")
    with pytest.raises(sl.ActorNotFoundError):
        system.tell("ghost", "x")
    with pytest.raises(sl.ActionNotFoundError, match=r"add, add_later, boom"):
        system.ask("counter", "nope")


def test_timeout_is_bounded_and_answered_once(system: sl.ActorSystem) -> None:
    slow = sl.Actor("slow", stateful=False)
    release = threading.Event()

    @slow.action
    def wait(ctx, payload):
        release.wait(10)
        return "late"

    ref = system.register(slow)
    ref.tell("wait")  # occupies the actor
    with pytest.raises(sl.InvocationTimeoutError, match=r"slow\.wait"):
        ref.ask("wait", timeout=0.2)
    release.set()
    system.run_until_idle()


def test_task_actor_does_not_stall_other_actors_or_timers() -> None:
    """A CPU-heavy TASK handler runs on the task executor; others and timers keep going."""
    with sl.ActorSystem("tasks", timeout=20) as system:
        heavy = sl.Actor("heavy", kind="task", stateful=False)

        @heavy.action
        def crunch(ctx, n):
            deadline = time.monotonic() + n
            total = 0
            while time.monotonic() < deadline:
                total += 1
            return total

        ticks = sl.Actor("ticker", state=0)

        @ticks.timer(10)
        def tick(ctx, payload):
            return sl.Value(state=ctx.state + 1)

        system.register(heavy)
        system.register(ticks)
        system.register(make_counter())
        done = threading.Event()
        threading.Thread(target=lambda: (system.ask("heavy", "crunch", 1.0), done.set())).start()
        wait_for(lambda: system.mailbox("heavy") != [])
        answered = [system.ask("counter", "add", 1) for _ in range(20)]
        assert answered[-1] == 20
        before = system.state("ticker")
        wait_for(lambda: system.state("ticker") >= before + 3)  # type: ignore[operator]
        assert not done.is_set()
        wait_for(done.is_set)


def test_reregistering_replaces_definition_and_keeps_state(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    ref.ask("add", 4)
    again = sl.Actor("counter", state=0)

    @again.action
    def double(ctx, payload):
        return sl.Value(ctx.state * 2, state=ctx.state * 2)

    system.register(again)
    assert ref.ask("double") == 8
    with pytest.raises(sl.ActionNotFoundError):
        ref.ask("add", 1)


def test_spawn_and_register_ref(system: sl.ActorSystem) -> None:
    system.register(make_counter("user", kind=sl.Kind.UNNAMED))
    alice = system.spawn("alice", "user")
    assert alice.ask("add", 1) == 1
    assert system.ask("bob", "add", 2, register_ref="user") == 2
    names = {i.actor_id.name: i for i in system.actors()}
    assert names["alice"].actor_id.parent == "user" and names["bob"].active
    with pytest.raises(sl.ActorNotFoundError, match="no UNNAMED template 'nope'"):
        system.spawn("carol", "nope")


def test_pooled_actor_serves_concurrently(system: sl.ActorSystem) -> None:
    pool = sl.Actor("pool", kind="pooled", max_pool_size=4)
    inside = threading.Semaphore(0)
    gate = threading.Event()

    @pool.action
    def work(ctx, n):
        inside.release()
        gate.wait(10)
        return n

    system.register(pool)
    for n in range(4):
        system.tell("pool", "work", n)
    for _ in range(4):
        assert inside.acquire(timeout=10), "replicas did not run in parallel"
    gate.set()
    system.run_until_idle()


def test_deactivation_persists_and_reactivation_reloads() -> None:
    with sl.ActorSystem("persist", timeout=10) as system:
        ref = system.register(make_counter(deactivate_timeout_ms=50, snapshot_interval_ms=None))
        ref.ask("add", 9)
        wait_for(lambda: not any(i.active for i in system.actors() if i.actor_id.name == "counter"))
        assert system.state("counter") == 9  # read through the pending write-behind save
        assert system.revisions("counter").numbers == [1]  # and stored once flushed
        assert ref.ask("add", 1) == 10


def test_checkpoint_is_durable_before_reply(system: sl.ActorSystem) -> None:
    saver = sl.Actor("saver", state=0)
    saver.action(lambda ctx, p: sl.Value("ok", state=ctx.state + 1, checkpoint=True), name="bump")
    system.register(saver)
    assert system.ask("saver", "bump") == "ok"
    row = system.store.load("test", "saver")
    assert row is not None and row.revision == 1


def test_step_mode_delivers_one_message_at_a_time(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    ref.ask("add", 0)
    system.pause()
    with pytest.raises(sl.SystemStateError, match="paused"):
        ref.ask("add", 1)
    ref.tell("add", 1)
    ref.tell("add", 2)
    assert [i.action for i in system.held()] == ["add", "add"]
    step = system.step()
    assert step is not None and step.ok and step.actor == "counter"
    assert ref.state == 1
    assert system.run_until_idle() == 1
    assert ref.state == 3
    assert system.step() is None


def test_breakpoint_holds_message_until_step(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    system.break_on("counter", "boom")
    ref.tell("add", 1)
    system.run_until_idle()
    ref.tell("boom")
    assert system.paused and [i.action for i in system.held()] == ["boom"]
    step = system.step()
    assert step is not None and not step.ok


def test_virtual_clock_fires_timers_and_delays_deterministically() -> None:
    def run() -> list[tuple[str, str, str]]:
        with sl.ActorSystem(
            "virtual", store="memory://", clock=sl.ManualClock(), timeout=10
        ) as system:
            clock = sl.Actor("clock", state=0)

            @clock.timer(1000)
            def tick(ctx, payload):
                return sl.Value(state=ctx.state + 1)

            system.register(clock)
            system.register(make_counter())
            system.tell("counter", "add", 5, delay=2.5)
            system.advance(3.0)
            assert system.state("clock") == 3
            assert system.state("counter") == 5
            return [(e.kind.value, e.actor, e.action) for e in system.events()]

    assert run() == run()


def test_advance_needs_virtual_clock(system: sl.ActorSystem) -> None:
    with pytest.raises(sl.SystemStateError, match="ManualClock"):
        system.advance(1)


def test_actor_cannot_ask_itself_synchronously(system: sl.ActorSystem) -> None:
    selfish = sl.Actor("selfish", stateful=False)

    @selfish.action
    def loop(ctx, payload):
        return ctx.system.ask("selfish", "loop")

    system.register(selfish)
    with pytest.raises(sl.InvocationError, match="cannot ask itself"):
        system.ask("selfish", "loop")


def test_nested_ask_records_caller_and_cause(system: sl.ActorSystem) -> None:
    system.register(make_counter())
    front = sl.Actor("front", stateful=False)

    @front.action
    def relay(ctx, n):
        return ctx.system.ask("counter", "add", n)

    system.register(front)
    assert system.ask("front", "relay", 3) == 3
    invokes = [e for e in system.events() if e.kind is EventKind.INVOKE and e.actor == "counter"]
    assert invokes[-1].detail[1] == "front" and invokes[-1].cause != 0


def test_closed_system_refuses_calls() -> None:
    system = sl.ActorSystem("closing")
    ref = system.register(make_counter())
    system.close()
    system.close()
    with pytest.raises(sl.SystemStateError, match="closed"):
        ref.ask("add", 1)


def test_html_reprs_show_actors_and_state(system: sl.ActorSystem) -> None:
    ref = system.register(make_counter())
    ref.ask("add", 42)
    page = system._repr_html_()
    assert "counter" in page and "NAMED" in page
    assert "42" in ref._repr_html_()


def test_cancelled_ask_async_frees_the_actor_for_the_next_message(system: sl.ActorSystem) -> None:
    """A caller that ran the handler itself and was cancelled leaves no actor stuck."""
    slow = sl.Actor("slowpoke", state=0)
    started = threading.Event()

    @slow.action
    async def wait(ctx, payload):
        started.set()
        await asyncio.sleep(10)

    @slow.action
    def add(ctx, n):
        return sl.Value(ctx.state + n, state=ctx.state + n)

    system.register(slow)

    async def cancel_one() -> None:
        task = asyncio.ensure_future(system.ask_async("slowpoke", "wait"))
        while not started.is_set():
            await asyncio.sleep(0.005)
        system.tell("slowpoke", "add", 1)  # queued behind the running handler
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_one())
    system.run_until_idle(timeout=10)
    assert system.ask("slowpoke", "add", 1) == 2


def test_interrupted_handler_frees_the_actor(system: sl.ActorSystem) -> None:
    """A KeyboardInterrupt (the notebook's interrupt) in a caller-run handler frees the actor."""
    flaky = sl.Actor("flaky", state=0)
    calls = []

    @flaky.action
    def poke(ctx, payload):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return "fine"

    system.register(flaky)
    with pytest.raises(KeyboardInterrupt):
        system.ask("flaky", "poke")
    assert system.ask("flaky", "poke", timeout=5) == "fine"


def test_run_until_idle_on_paused_system_waits_for_running_work(system: sl.ActorSystem) -> None:
    gate = threading.Event()
    worker = sl.Actor("worker", state=0)

    @worker.action
    def work(ctx, payload):
        gate.wait(10)
        return sl.Value(state=ctx.state + 1, effects=(sl.SideEffect("worker", "bump"),))

    @worker.action
    def bump(ctx, payload):
        return sl.Value(state=ctx.state + 10)

    system.register(worker)
    system.tell("worker", "work")
    wait_for(lambda: system.mailbox("worker") != [])
    system.pause()
    threading.Timer(0.05, gate.set).start()
    assert system.run_until_idle(timeout=10) == 1  # the side effect, held, then stepped
    assert system.state("worker") == 11


def test_crash_of_a_busy_actor_is_refused(system: sl.ActorSystem) -> None:
    gate = threading.Event()
    busy = sl.Actor("busy", state=0)
    busy.action(lambda ctx, p: gate.wait(10), name="hold")
    system.register(busy)
    system.tell("busy", "hold")
    wait_for(lambda: system.mailbox("busy") != [])
    try:
        with pytest.raises(sl.SystemStateError, match="running a handler"):
            system.crash("busy")
    finally:
        gate.set()
    system.run_until_idle()
    system.crash("busy")


def test_virtual_time_handler_can_ask_an_inactive_stateful_actor() -> None:
    """With one worker (virtual time), a handler's ask to an actor that must load first is run
    by the asking thread itself instead of queueing behind it."""
    with sl.ActorSystem("v-nested", store="memory://", clock=sl.ManualClock(), timeout=5) as s:
        target = sl.Actor("b", state=0)
        target.action(lambda ctx, n: sl.Value(ctx.state + n, state=ctx.state + n), name="add")
        relay = sl.Actor("a", stateful=False)
        relay.action(lambda ctx, n: ctx.system.ask("b", "add", n), name="relay")
        s.register(relay)
        s.register(target)
        s.deactivate("b")
        s.tell("a", "relay", 5)
        s.run_until_idle()
        assert s.state("b") == 5
