"""Live views: subscribed only while open, cheap while recording, never stalling a burst."""

from __future__ import annotations

import time

from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.graph_view import GraphView
from spawn_lab.ui.live import LiveLoop


def wait_for(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Bounded polling (the only kind of waiting these tests do)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_live_loop_subscribes_only_while_running(system: ActorSystem) -> None:
    loop = LiveLoop(system.trace)
    assert system.trace._subscribers == []
    loop.start()
    try:
        assert len(system.trace._subscribers) == 1
        assert loop.running
    finally:
        loop.stop()
    assert system.trace._subscribers == []
    assert not loop.running


def test_live_loop_subscriber_is_a_plain_deque_append(system: ActorSystem) -> None:
    loop = LiveLoop(system.trace)
    loop.subscribe()
    try:
        (subscriber,) = system.trace._subscribers
        assert (
            type(subscriber).__name__ == "builtin_function_or_method"
        )  # no Python frame per event
    finally:
        loop.stop()


def test_live_loop_tick_catches_up_then_takes_only_new_events(system: ActorSystem) -> None:
    seen: list[int] = []
    loop = LiveLoop(system.trace)
    loop.add(lambda batch: seen.extend(e[0] for e in batch))
    system.ask("logger", "log", 1)
    loop.subscribe()
    try:
        loop.tick()
        system.ask("logger", "log", 2)
        loop.tick()
        loop.tick()
    finally:
        loop.stop()
    assert seen == list(range(1, system.trace_seq() + 1))


def test_live_loop_rejects_more_than_four_hertz(system: ActorSystem) -> None:
    import pytest

    with pytest.raises(ValueError, match="4 Hz"):
        LiveLoop(system.trace, interval=0.1)


def test_live_loop_listener_error_goes_to_the_error_sink(system: ActorSystem) -> None:
    errors: list[str] = []
    loop = LiveLoop(system.trace, on_error=lambda where, exc: errors.append(f"{where}: {exc}"))

    def broken(batch: list) -> None:  # type: ignore[type-arg]
        raise RuntimeError("view broke")

    loop.add(broken)
    loop.tick()
    assert len(errors) == 1 and "view broke" in errors[0]


def test_graph_view_does_nothing_until_shown_then_follows_view_count(system: ActorSystem) -> None:
    view = GraphView(system)
    system.ask("logger", "log", 1)
    assert system.trace._subscribers == [] and view.frames == 0
    view.image._view_count = 1  # what the front end does when it renders the widget
    try:
        assert view.loop.running and view.frames == 1
        assert view.image.value[:4] == b"\x89PNG"
        assert view.model.edges()
    finally:
        view.image._view_count = 0  # the last view went away
    assert system.trace._subscribers == [] and not view.loop.running


def test_graph_view_burst_of_ten_thousand_messages_is_followed(system: ActorSystem) -> None:
    view = GraphView(system)
    view.open()
    try:
        started = time.perf_counter()
        for i in range(10_000):
            system.tell("logger", "log", i)
        sent = time.perf_counter() - started
        system.run_until_idle()
        last = system.trace_seq()
        assert wait_for(lambda: view.model.seq >= last)
        assert sent < 10.0  # the cell was never held up by drawing (10k tells take ~0.1 s)
    finally:
        view.close()
    assert view.model.lost == 0
    assert view.model.messages >= 10_000
    assert 1 <= view.frames <= view.loop.ticks + 1  # at most one frame per tick (≤ 4 Hz)


def test_graph_view_stays_quiet_when_nothing_happens(system: ActorSystem) -> None:
    view = GraphView(system)
    view.refresh()
    frames = view.frames
    for _ in range(view.renderer.pulse_frames + 3):
        view.refresh()
    assert view.frames <= frames + view.renderer.pulse_frames
    settled = view.frames
    view.refresh()
    assert view.frames == settled


def test_graph_view_display_bundle_has_widget_and_png_fallback(system: ActorSystem) -> None:
    import base64

    system.ask("logger", "log", 1)
    bundle = GraphView(system)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert system.trace._subscribers == []  # a snapshot, not a subscription
