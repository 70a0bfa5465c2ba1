"""Core figures of issue 2 §9: asyncio floor, ask/tell throughput, Pykka, wire, memory, trace.

Every throughput figure is the same counter (``add(n)`` returns and stores ``state + n``) so the
floor, the runtime and Pykka do the same work; each check at the end of a figure makes sure the
counter really counted, so a figure cannot come from a silently failing path.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib
import inspect
import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spawn_lab as sl
from bench import harness
from bench.harness import RecordFn, Sample, rate, wanted
from spawn_lab.core.trace import EventKind

N_FLOOR = 50_000
N_ASK_ASYNC = 30_000
N_TELL = 20_000
N_ASK_SYNC = 20_000
N_PYKKA = 10_000
N_WIRE = 10_000
N_PASSIVE = 100_000
N_ACTIVE = 20_000


def run(record: RecordFn) -> None:
    # Rates compared with each other are measured in alternating trials (round robin), so that
    # background load on a noisy machine hits the figure and its base alike.
    _run_cases(
        record,
        [
            ("floor_ask", floor_case),
            ("ask_async", ask_async_case),
            ("tell", tell_case),
            ("invoke_wire", invoke_wire_case),
        ],
    )
    _run_cases(
        record,
        [("pykka_ask", pykka_case), ("ask_sync_from_thread", ask_sync_from_thread_case)],
    )
    for name, unit, measure in (
        ("mem_passive_actor_bytes", "B", measure_mem_passive),
        ("mem_active_idle_actor_bytes", "B", measure_mem_active_idle),
        ("trace_overhead", "%", measure_trace_overhead),
    ):
        if wanted(name):
            try:
                measure(record)
            except Exception as exc:  # record the failure and go on with the other figures
                record(name, None, unit, note=f"failed: {type(exc).__name__}: {exc}")


# -- helpers -------------------------------------------------------------------------------------


def _counter(kind: str = "NAMED", **settings: Any) -> sl.Actor:
    actor = sl.Actor("counter" if kind == "NAMED" else "tpl", kind=kind, state=0, **settings)

    @actor.action
    def add(ctx: sl.Context, n: int) -> sl.Value:
        total: int = ctx.state + n  # type: ignore[operator]
        return sl.Value(total, state=total)

    return actor


def _system(name: str, **kwargs: Any) -> tuple[sl.ActorSystem, sl.ActorRef]:
    kwargs.setdefault("store", "memory://")
    system = sl.ActorSystem(f"bench-{name}", **kwargs)
    ref = system.register(_counter())
    ref.ask("add", 1)  # activate, so every timed call reaches an idle, active actor
    return system, ref


def _check(ref: sl.ActorRef, expected: int) -> None:
    state = ref.system.state(ref.name)
    if state != expected:
        raise AssertionError(f"counter is {state!r} after the run, expected {expected}")


def _in_thread(fn: Callable[[int], float]) -> Callable[[int], float]:
    """Run a timed function on a fresh plain thread (a synchronous cell's caller)."""

    def timed(n: int) -> float:
        out: list[float | BaseException] = []

        def body() -> None:
            try:
                out.append(fn(n))
            except BaseException as exc:
                out.append(exc)

        thread = threading.Thread(target=body, name="bench-caller")
        thread.start()
        thread.join()
        result = out[0]
        if isinstance(result, BaseException):
            raise result
        return result

    return timed


@dataclass
class Case:
    """One throughput figure: ``timed(n)`` returns the seconds ``n`` operations took;
    ``finish(trials)`` checks the result (raising if the counter miscounted) and cleans up."""

    n: int
    timed: Callable[[int], float]
    finish: Callable[[int], None] = lambda trials: None
    ratio: str | None = None
    note: str = ""


def _run_cases(record: RecordFn, makers: list[tuple[str, Callable[[], Case | str]]]) -> None:
    """Set up every wanted case, time them round robin, then check and record each.

    The first maker is the group's base: it runs whenever any case of the group is wanted.
    A maker returns a Case, or a string: the reason the figure cannot be measured.
    """
    if not any(wanted(name) for name, _ in makers):
        return
    cases: dict[str, Case] = {}
    for i, (name, make) in enumerate(makers):
        if i > 0 and not wanted(name):
            continue
        try:
            made = make()
        except Exception as exc:
            record(name, None, "ops/s", note=f"failed: {type(exc).__name__}: {exc}")
            continue
        if isinstance(made, str):
            record(name, None, "ops/s", note=made)
        else:
            cases[name] = made
    samples, failed = round_robin(cases)
    for name, case in cases.items():
        if name in failed:
            record(name, None, "ops/s", note=failed[name])
            continue
        sample = samples[name]
        note = f"{case.note}; {sample.note()}" if case.note else sample.note()
        record(name, sample.best, "ops/s", ratio=case.ratio, note=note)


def round_robin(
    cases: dict[str, Case], factor: int = 1
) -> tuple[dict[str, Sample], dict[str, str]]:
    """Time every case ``factor * harness.TRIALS`` times, alternating, so background load hits
    a figure and its base alike; then check and clean up each. Returns the samples of the cases
    that worked and the failure notes of the others."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    failed: dict[str, str] = {}
    try:
        for _ in range(harness.TRIALS * factor):
            for name, case in cases.items():
                if name in failed:
                    continue
                try:
                    rates[name].extend(rate(case.timed, case.n, 1).values)
                except Exception as exc:
                    failed[name] = f"failed: {type(exc).__name__}: {exc}"
    finally:
        for name, case in cases.items():
            try:
                case.finish(len(rates[name]))
            except Exception as exc:
                failed.setdefault(name, f"failed check: {type(exc).__name__}: {exc}")
    return {n: Sample(v) for n, v in rates.items() if n not in failed and v}, failed


# -- floor_ask -----------------------------------------------------------------------------------


async def _floor(n: int) -> float:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue()

    async def actor() -> None:
        state = 0
        while True:
            msg, future = await queue.get()
            state += msg
            future.set_result(state)

    task = loop.create_task(actor())
    started = time.perf_counter()
    for _ in range(n):
        future = loop.create_future()
        queue.put_nowait((1, future))
        await future
    elapsed = time.perf_counter() - started
    task.cancel()
    if future.result() != n:
        raise AssertionError("floor counter miscounted")
    return elapsed


def floor_case() -> Case:
    """An actor task awaiting ``(msg, future)`` on an asyncio.Queue; the caller awaits it."""
    return Case(N_FLOOR, lambda n: asyncio.run(_floor(n)))


def measure_floor(record: RecordFn) -> None:
    """floor_ask alone (the harness calls this when a run lacks it but needs the ratio)."""
    _run_cases(record, [("floor_ask", floor_case)])


# -- ask_async and tell --------------------------------------------------------------------------


def _ask_async_timed(
    ref: sl.ActorRef, clock: Callable[[], float] = time.perf_counter
) -> Callable[[int], float]:
    async def trial(n: int) -> float:
        ask = ref.ask_async
        started = clock()
        for _ in range(n):
            await ask("add", 1)
        return clock() - started

    return lambda n: asyncio.run(trial(n))


def _closing(system: sl.ActorSystem, ref: sl.ActorRef, first: int, n: int) -> Callable[[int], None]:
    def finish(trials: int) -> None:
        try:
            _check(ref, first + n * trials)
        finally:
            system.close()

    return finish


def ask_async_case() -> Case:
    """``await ref.ask_async`` from a coroutine on the caller's own loop (top-level await)."""
    system, ref = _system("ask-async")
    return Case(N_ASK_ASYNC, _ask_async_timed(ref), _closing(system, ref, 1, N_ASK_ASYNC))


def tell_case() -> Case:
    """N tells from the main thread, then ``run_until_idle``; the rate is per message."""
    system, ref = _system("tell")

    def timed(n: int) -> float:
        tell = ref.tell
        started = time.perf_counter()
        for _ in range(n):
            tell("add", 1)
        system.run_until_idle()
        return time.perf_counter() - started

    return Case(N_TELL, timed, _closing(system, ref, 1, N_TELL))


# -- ask_sync_from_thread and Pykka ---------------------------------------------------------------


def ask_sync_from_thread_case() -> Case:
    """The blocking ``ref.ask`` from a plain thread, as a synchronous cell makes it."""
    system, ref = _system("ask-sync")

    def timed(n: int) -> float:
        ask = ref.ask
        started = time.perf_counter()
        for _ in range(n):
            ask("add", 1)
        return time.perf_counter() - started

    finish = _closing(system, ref, 1, N_ASK_SYNC)
    return Case(N_ASK_SYNC, _in_thread(timed), finish, ratio="pykka_ask")


def pykka_case() -> Case:
    """Pykka's ``ThreadingActor`` ask with the same counter, from a plain thread."""
    import pykka

    class Counter(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.state = 0

        def on_receive(self, message: int) -> int:
            self.state += message
            return self.state

    actor = Counter.start()

    def timed(n: int) -> float:
        ask = actor.ask
        started = time.perf_counter()
        for _ in range(n):
            ask(1)
        return time.perf_counter() - started

    def finish(trials: int) -> None:
        try:
            total = actor.ask(0)
        finally:
            actor.stop()
        if total != N_PYKKA * trials:
            raise AssertionError(f"pykka counter is {total}, expected {N_PYKKA * trials}")

    return Case(N_PYKKA, _in_thread(timed), finish, note="actor_ref.ask(msg)")


# -- invoke_wire ---------------------------------------------------------------------------------


def invoke_wire_case() -> Case | str:
    """InvocationRequest bytes in, InvocationResponse bytes out, through ``transports.wire``."""
    try:
        wire = importlib.import_module("spawn_lab.transports.wire")
        invoke: Any = wire.invoke_bytes
    except (ImportError, AttributeError) as exc:
        return f"transports.wire missing ({exc})"
    from spawn_lab.protocol import payloads
    from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2

    system, ref = _system("wire")
    body = protocol_pb2.InvocationRequest(
        system=actor_pb2.ActorSystem(name=system.name),
        actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=ref.name, system=system.name)),
        action_name="add",
        value=payloads.pack(1),
    ).SerializeToString()

    if inspect.iscoroutinefunction(invoke):

        async def trial(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                await invoke(system, body)
            return time.perf_counter() - started

        def timed(n: int) -> float:
            return asyncio.run(trial(n))

        def once() -> bytes:
            return bytes(asyncio.run(invoke(system, body)))

    else:

        def timed(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                invoke(system, body)
            return time.perf_counter() - started

        def once() -> bytes:
            return bytes(invoke(system, body))

    try:
        response = protocol_pb2.InvocationResponse.FromString(once())
        if response.status.status != protocol_pb2.OK:
            raise AssertionError(f"wire answered not OK: {response.status.message!r}")
        if payloads.unpack(response.value) != 2:
            raise AssertionError(f"wire answered {payloads.unpack(response.value)!r}, expected 2")
    except BaseException:
        system.close()
        raise
    return Case(N_WIRE, timed, _closing(system, ref, 2, N_WIRE), note="wire.invoke_bytes")


# -- memory --------------------------------------------------------------------------------------


def _by_file(snapshot: tracemalloc.Snapshot, count: int) -> str:
    """The biggest allocating files per actor, e.g. ``trace.py 126, engine.py 90``."""
    stats = snapshot.statistics("filename")
    parts = []
    for stat in stats[:4]:
        per = stat.size / count
        if per >= 5:
            name = os.path.basename(stat.traceback[0].filename)
            parts.append(f"{'names' if name == 'bench_core.py' else name} {per:.0f}")
    return ", ".join(parts)


def _traced(*phases: Callable[[], object]) -> tuple[list[int], tracemalloc.Snapshot]:
    """Bytes still allocated after each phase (after a full collection), and a final snapshot."""
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        grown = []
        for phase in phases:
            phase()
            gc.collect()
            grown.append(tracemalloc.get_traced_memory()[0] - before)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return grown, snapshot


def _fill_ring(system: sl.ActorSystem) -> None:
    """Fill the trace ring to capacity, as in a system that has run for a while.

    The ring is bounded (``trace_capacity`` events), so its memory is a fixed cost of the
    system, not of each actor: once it is full, every new event replaces an old one.
    """
    trace = system.trace
    for _ in range(trace.capacity):
        trace.emit(0.0, EventKind.REGISTER, 0, 0, "warm-up", "")


def _passive(steady: bool) -> tuple[float, str]:
    system = sl.ActorSystem("bench-mem-passive", store="memory://")
    system.register(_counter("UNNAMED"))
    if steady:
        _fill_ring(system)
    spawn = system.spawn

    def spawn_all() -> None:
        for i in range(N_PASSIVE):
            spawn(f"user-{i:06d}", "tpl")

    try:
        (grown,), snapshot = _traced(spawn_all)
        passive = sum(1 for i in system.actors() if not i.active and not i.template)
        if passive != N_PASSIVE:
            raise AssertionError(f"{passive} passive instances, expected {N_PASSIVE}")
    finally:
        system.close()
    return grown / N_PASSIVE, _by_file(snapshot, N_PASSIVE)


def measure_mem_passive(record: RecordFn) -> None:
    """Growth per spawned, never activated instance of an UNNAMED template (100k instances).

    Measured in steady state: the trace ring (a fixed-size buffer) is already full, so each
    instance's SPAWN event replaces an old one. The name strings count, as the system keeps
    them. The note gives the figure for a fresh system, whose ring is still filling up.
    """
    per, files = _passive(steady=True)
    fresh, _ = _passive(steady=False)
    record(
        "mem_passive_actor_bytes",
        per,
        "B",
        note=(
            f"{N_PASSIVE:,} instances; by file: {files}; fresh system (ring filling) {fresh:.0f} B"
        ),
    )


def _active(steady: bool) -> tuple[float, float, str]:
    system = sl.ActorSystem("bench-mem-active", store="memory://", clock=sl.ManualClock())
    system.register(_counter("UNNAMED"))
    system.spawn("warm", "tpl").ask("add", 1)
    if steady:
        _fill_ring(system)
    names: list[str] = []
    spawn, ask = system.spawn, system.ask

    def spawn_all() -> None:
        names.extend(f"user-{i:06d}" for i in range(N_ACTIVE))
        for name in names:
            spawn(name, "tpl")

    def activate_all() -> None:
        for name in names:
            ask(name, "add", 1)
        names.clear()  # the list is ours; the name strings stay, as the system keeps them

    try:
        (passive, total), snapshot = _traced(spawn_all, activate_all)
        live = sum(1 for i in system.actors() if i.active)
        if live != N_ACTIVE + 1:
            raise AssertionError(f"{live} active actors, expected {N_ACTIVE + 1}")
    finally:
        system.close()
    return total / N_ACTIVE, passive / N_ACTIVE, _by_file(snapshot, N_ACTIVE)


def measure_mem_active_idle(record: RecordFn) -> None:
    """Growth per active idle actor: spawn N stateful instances and ask each once.

    ManualClock, so that no snapshot or idle timer fires while measuring. The figure includes the
    instance's passive cost; as for passive actors it is taken with the trace ring already full
    (steady state), and the note gives the fresh-system figure.
    """
    per, passive, files = _active(steady=True)
    fresh, _, _ = _active(steady=False)
    record(
        "mem_active_idle_actor_bytes",
        per,
        "B",
        note=(
            f"{N_ACTIVE:,} stateful instances, one ask each (passive part {passive:.0f} B); "
            f"by file: {files}; fresh system (ring filling) {fresh:.0f} B"
        ),
    )


# -- trace_overhead ------------------------------------------------------------------------------


class _StripEmits(ast.NodeTransformer):
    """Replace every ``<...>.trace.emit(...)`` or ``trace.record(...)`` statement with ``pass``."""

    stripped = 0

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            owner = call.func.value
            on_trace = (isinstance(owner, ast.Attribute) and owner.attr == "trace") or (
                isinstance(owner, ast.Name) and owner.id == "trace"
            )
            if on_trace and call.func.attr in ("emit", "record"):
                self.stripped += 1
                return ast.copy_location(ast.Pass(), node)
        return node


def untraced_engine() -> type:
    """The Engine class compiled without its ``trace.emit`` calls: capture truly off.

    What a real ``trace=False`` switch could at best give (no event built, no argument evaluated),
    for comparison with the default capture. The engine source is read, not modified.
    """
    from spawn_lab.core import engine

    source = Path(engine.__file__).read_text()
    stripper = _StripEmits()
    tree = ast.fix_missing_locations(stripper.visit(ast.parse(source)))
    if stripper.stripped == 0:
        raise RuntimeError("no trace.emit call found in spawn_lab/core/engine.py")
    namespace: dict[str, Any] = {"__name__": "bench._engine_untraced", "__file__": engine.__file__}
    exec(compile(tree, engine.__file__, "exec"), namespace)
    cls: type = namespace["Engine"]
    return cls


def measure_trace_overhead(record: RecordFn) -> None:
    """Slowdown of ``ask_async`` with the trace on (default, no subscriber) vs capture off.

    There is no off switch yet, so "off" is the same engine object switched to a copy of its class
    compiled without the ``trace.emit`` calls. The note also gives the cheaper approximation,
    ``trace.emit`` patched to a no-op (its arguments are still evaluated). Trials alternate so
    that drift on a noisy machine hits all three; best of each, in process CPU time.
    """
    system, ref = _system("trace")
    # CPU time, not wall time: the path is single-threaded, and a pure ratio of two CPU costs
    # does not move when another process takes the core for a while.
    timed = _ask_async_timed(ref, time.process_time)
    engine = system._engine
    traced, untraced = type(engine), untraced_engine()
    on: list[float] = []
    patched: list[float] = []
    off: list[float] = []
    trials = max(harness.TRIALS, 7)
    try:
        for _ in range(trials):
            on.extend(rate(timed, N_ASK_ASYNC, 1).values)
            system.trace.emit = lambda *args, **kwargs: None  # type: ignore[method-assign]
            try:
                patched.extend(rate(timed, N_ASK_ASYNC, 1).values)
            finally:
                del system.trace.emit
            engine.__class__ = untraced
            try:
                off.extend(rate(timed, N_ASK_ASYNC, 1).values)
            finally:
                engine.__class__ = traced
        _check(ref, 1 + N_ASK_ASYNC * 3 * trials)
    finally:
        system.close()
    best_on, best_patched, best_off = Sample(on).best, Sample(patched).best, Sample(off).best
    record(
        "trace_overhead",
        (best_off / best_on - 1) * 100,
        "%",
        note=(
            f"ask_async on {best_on:,.0f} vs off {best_off:,.0f} ops per CPU-s (engine without "
            f"emit calls); emit patched to a no-op: {(best_patched / best_on - 1) * 100:.1f} %; "
            f"best of {trials}"
        ),
    )
