"""The renderer: PNG frames that change as messages flow, red failed edges, fixed positions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from spawn_lab.core.effects import Via
from spawn_lab.core.errors import InvocationError
from spawn_lab.core.trace import EventKind, TraceBus
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.flow import EXTERNAL, FlowModel
from spawn_lab.ui.render import GraphRenderer


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def along_edge(renderer: GraphRenderer, image: np.ndarray, src: str, dst: str) -> np.ndarray:
    """RGB pixels in a thin band along the middle of the edge src -> dst (nodes left out)."""
    transform = renderer.ax.transData.transform
    a = np.array(transform(renderer.positions[src]))
    b = np.array(transform(renderer.positions[dst]))
    height = image.shape[0]
    found = []
    for t in np.linspace(0.3, 0.7, 25):
        x, y = a + t * (b - a)
        row, col = round(float(height - y)), round(float(x))
        found.append(image[row - 4 : row + 5, col - 4 : col + 5].reshape(-1, 3))
    return np.concatenate(found)


def is_red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[:, 0] > 190) & (rgb[:, 1] < 60) & (rgb[:, 2] < 60)


def test_render_png_changes_when_messages_flow(system: ActorSystem) -> None:
    model, renderer = FlowModel(), GraphRenderer()
    model.sync(system.trace)
    before = renderer.render(model)
    system.ask("logger", "log", 1)
    model.sync(system.trace)
    after = renderer.render(model)
    assert before[:8] == after[:8] == b"\x89PNG\r\n\x1a\n"
    assert before != after
    band = along_edge(renderer, pixels(after), EXTERNAL, "logger")
    assert (np.abs(band - 255).sum(axis=1) > 60).sum() > 10  # the edge is drawn there
    assert not is_red(band).any()


def test_render_failing_handler_turns_the_edge_red(system: ActorSystem) -> None:
    model, renderer = FlowModel(), GraphRenderer()
    system.ask("counter", "add", 1)
    model.sync(system.trace)
    ok = pixels(renderer.render(model))
    assert not is_red(along_edge(renderer, ok, EXTERNAL, "counter")).any()
    with pytest.raises(InvocationError):
        system.ask("counter", "boom")
    model.sync(system.trace)
    failed = pixels(renderer.render(model))
    assert is_red(along_edge(renderer, failed, EXTERNAL, "counter")).sum() > 20
    assert not is_red(along_edge(renderer, failed, "counter", "logger")).any()


def test_render_positions_stay_fixed_when_nodes_appear(system: ActorSystem) -> None:
    model, renderer = FlowModel(), GraphRenderer()
    system.ask("counter", "add", 1)
    system.run_until_idle()
    model.sync(system.trace)
    renderer.render(model)
    placed = {n: p for n, p in renderer.positions.items() if n not in renderer.layout.provisional}
    system.spawn("w1", "worker")
    system.ask("w1", "hello", 1)
    model.sync(system.trace)
    renderer.render(model)
    assert "w1" in renderer.positions
    assert {n: renderer.positions[n] for n in placed} == placed


def test_render_lonely_actors_wait_in_a_grid_then_move_once(system: ActorSystem) -> None:
    model, renderer = FlowModel(), GraphRenderer()
    model.describe(system.actors())
    model.sync(system.trace)
    renderer.render(model)
    assert "logger" in renderer.layout.provisional
    system.ask("logger", "log", 1)
    model.sync(system.trace)
    renderer.render(model)
    assert "logger" not in renderer.layout.provisional


def mesh(count: int) -> TraceBus:
    bus = TraceBus()
    rng = np.random.default_rng(3)
    for i in range(count):
        bus.emit(0.0, EventKind.REGISTER, 0, 0, f"a{i}", "", {"kind": "NAMED"})
        bus.emit(0.0, EventKind.ACTIVATE, 0, 0, f"a{i}", "", f"a{i}")
    for inv in range(1, 4 * count):
        src, dst = (f"a{j}" for j in rng.integers(0, count, 2))
        bus.emit(1.0, EventKind.INVOKE, inv, 0, dst, "x", (Via.EFFECT, src, True))
        bus.emit(1.0, EventKind.DELIVER, inv, 0, dst, "x")
    return bus


def test_render_two_hundred_actors_keeps_labels_bounded() -> None:
    model, renderer = FlowModel(), GraphRenderer(max_labels=40)
    model.sync(mesh(200))
    png = renderer.render(model)
    assert len(renderer.positions) == 201  # and the external node
    assert len(renderer._labels) == 40
    assert pixels(png).shape == (480, 720, 3)
    renderer.render(model)
    assert renderer.last_frame_ms > 0


def test_render_pulse_fades_after_a_few_quiet_frames(system: ActorSystem) -> None:
    model, renderer = FlowModel(), GraphRenderer(pulse_frames=2)
    system.ask("logger", "log", 1)
    model.sync(system.trace)
    frames = [renderer.render(model, status="") for _ in range(4)]
    assert frames[0] != frames[2]
    assert frames[2] == frames[3]
