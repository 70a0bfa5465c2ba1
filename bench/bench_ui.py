"""UI figures of issue 6: the cost of watching (ask_async with the live graph open), frame times.

- ``ask_async_view_open``: the bench_core counter asked with ``await ask_async`` while a
  :class:`GraphView` is open (subscribed to the trace bus, its thread drawing at 4 Hz), against
  ``ask_async_view_closed``, the same loop with no view, measured interleaved in this run.
- ``graph_frame_ms_50`` / ``graph_frame_ms_200``: median time of one live frame (fold the new
  events in, draw, encode PNG) for a 50- and a 200-actor mesh that keeps talking, after the
  first frame (which lays the graph out once and is reported in the note).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from typing import Any

from bench import harness
from bench.harness import RecordFn, Target, wanted
from spawn_lab.core.effects import Via
from spawn_lab.core.model import Value
from spawn_lab.core.trace import EventKind, TraceBus
from spawn_lab.runtime.actors import Actor
from spawn_lab.runtime.system import ActorSystem

N_ASK = 30_000
FRAMES = 60

TARGETS = {
    "ask_async_view_closed": Target("ratio", "base", 1.0, "base"),
    "ask_async_view_open": Target("ratio", ">=", 0.8, ">= 0.8x view closed"),
    "graph_frame_ms_50": Target("value", "<=", 20, "<= 20 ms"),
    "graph_frame_ms_200": Target("value", "<=", 50, "<= 50 ms"),
}


def run(record: RecordFn) -> None:
    for names, measure in (
        (("ask_async_view_closed", "ask_async_view_open"), measure_view_cost),
        (("graph_frame_ms_50",), lambda r: measure_frames(r, 50)),
        (("graph_frame_ms_200",), lambda r: measure_frames(r, 200)),
    ):
        if not any(wanted(n) for n in names):
            continue
        try:
            measure(record)
        except Exception as exc:  # record the failure, go on with the other figures
            for name in names:
                record(name, None, "ops/s" if "ask" in name else "ms", note=f"failed: {exc!r}")


# -- the cost of an open view ------------------------------------------------------------------


def _counter_system() -> ActorSystem:
    system = ActorSystem("bench-ui", store="memory://")
    counter = Actor("counter", state=0)

    @counter.action
    def add(ctx: Any, n: int) -> Value:
        total: int = ctx.state + n
        return Value(total, state=total)

    system.register(counter)
    system.ask("counter", "add", 1)
    return system


async def _asks(system: ActorSystem, n: int) -> float:
    ask = system.ask_async
    started = time.perf_counter()
    for _ in range(n):
        await ask("counter", "add", 1)
    return time.perf_counter() - started


def measure_view_cost(record: RecordFn) -> None:
    """Interleave trials without and with an open view, so drift hits both alike."""
    from spawn_lab.ui.graph_view import GraphView

    system = _counter_system()
    closed: list[float] = []
    opened: list[float] = []
    frames = 0
    try:
        view = GraphView(system)
        for _ in range(harness.TRIALS):
            gc.collect()
            closed.append(N_ASK / asyncio.run(_asks(system, N_ASK)))
            view.open()
            try:
                gc.collect()
                opened.append(N_ASK / asyncio.run(_asks(system, N_ASK)))
            finally:
                view.close()
            frames = view.frames
        expected = 1 + 2 * harness.TRIALS * N_ASK
        if system.state("counter") != expected:
            raise AssertionError(f"counter is {system.state('counter')!r}, expected {expected}")
    finally:
        system.close()
    record("ask_async_view_closed", max(closed), "ops/s", note=_note(closed))
    record(
        "ask_async_view_open",
        max(opened),
        "ops/s",
        ratio="ask_async_view_closed",
        note=f"{_note(opened)}; {frames} frames drawn, {view.model.messages} messages shown",
    )


def _note(values: list[float]) -> str:
    return f"best of {len(values)}; median {statistics.median(values):,.0f}"


# -- frame times -----------------------------------------------------------------------------------


def _mesh(count: int, bus: TraceBus) -> list[tuple[str, str, Via]]:
    """Register ``count`` actors with kinds, and pick 2 x count pairs that talk."""
    kinds = ("NAMED", "UNNAMED", "POOLED", "TASK")
    for i in range(count):
        bus.emit(0.0, EventKind.REGISTER, 0, 0, f"a{i}", "", {"kind": kinds[i % 4]})
        bus.emit(0.0, EventKind.ACTIVATE, 0, 0, f"a{i}", "", f"a{i}")
    vias = (Via.EXTERNAL, Via.EFFECT, Via.PIPE, Via.FORWARD)
    return [
        (f"a{(i * 7) % count}", f"a{(i * 13 + 5) % count}", vias[i % 4]) for i in range(2 * count)
    ]


def _talk(bus: TraceBus, pairs: list[tuple[str, str, Via]], start: int, count: int) -> int:
    for i in range(start, start + count):
        src, dst, via = pairs[(i * 31) % len(pairs)]
        bus.emit(1.0, EventKind.INVOKE, i, 0, dst, "work", (via, src, False))
        bus.emit(1.0, EventKind.REPLY, i, 0, dst, "work")
    return start + count


def measure_frames(record: RecordFn, count: int) -> None:
    from spawn_lab.ui.flow import FlowModel
    from spawn_lab.ui.live import LiveLoop
    from spawn_lab.ui.render import GraphRenderer

    bus = TraceBus()
    pairs = _mesh(count, bus)
    model, renderer = FlowModel(), GraphRenderer()
    loop = LiveLoop(bus)
    loop.add(model.feed)
    loop.subscribe()
    try:
        inv = _talk(bus, pairs, 1, 8 * count)  # every pair has talked: the layout is final
        loop.tick()
        started = time.perf_counter()
        renderer.render(model, status="")
        first = (time.perf_counter() - started) * 1000
        times = []
        for _ in range(FRAMES):
            inv = _talk(bus, pairs, inv, 250)  # ~1,000 messages/s at 4 frames/s
            started = time.perf_counter()
            loop.tick()
            renderer.render(model, status="")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        loop.stop()
    times.sort()
    record(
        f"graph_frame_ms_{count}",
        statistics.median(times),
        "ms",
        note=(
            f"median of {FRAMES} frames (250 new messages each, {len(model.edges())} edges); "
            f"p90 {times[int(0.9 * len(times))]:.1f} ms; first frame with layout {first:.0f} ms"
        ),
    )
