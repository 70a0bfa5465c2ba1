"""``lab(system)``: the AppLayout, its live loop's life, exports, and the text fallback."""

from __future__ import annotations

import builtins
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import spawn_lab.ui as ui
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.lab import Lab, TextLab


def test_lab_returns_an_app_layout_of_stock_widgets(system: ActorSystem) -> None:
    import ipywidgets

    layout = ui.lab(system)
    try:
        assert type(layout) is ipywidgets.AppLayout
        assert isinstance(layout.lab, Lab)
        assert layout.center.children[0] is layout.lab.graph.widget
        assert layout.footer is layout.lab.errors.widget
    finally:
        layout.lab.close()


def test_lab_loop_runs_only_while_a_view_is_shown(system: ActorSystem) -> None:
    layout = ui.lab(system)
    lab: Lab = layout.lab
    assert not lab.loop.running and system.trace._subscribers == []
    layout._view_count = 1
    try:
        assert lab.loop.running and len(system.trace._subscribers) == 1
        assert lab.graph.frames >= 1
    finally:
        layout._view_count = 0
    assert not lab.loop.running and system.trace._subscribers == []


def test_lab_spawn_and_send_change_the_graph_and_inspector(system: ActorSystem) -> None:
    lab = Lab(system)
    lab.open()
    try:
        first = lab.graph.image.value
        lab.spawner.name.value = "w1"
        lab.spawner.button.click()
        lab.composer.action.value = "hello"
        lab.composer.payload.value = '"hi"'
        lab.composer.button.click()
        lab.asks.wait()
        lab.refresh()
        assert lab.composer.actor.value == "w1"
        assert "&quot;greeted&quot;: 1" in lab.inspector.state.value
        assert lab.graph.image.value != first
        assert ("w1", "logger") in {(s, d) for s, d, _ in lab.graph.model.edges()}
        assert lab.errors.errors == []
    finally:
        lab.close()


def test_lab_export_buttons_write_every_artifact(system: ActorSystem, tmp_path: Path) -> None:
    lab = Lab(system, export_folder=tmp_path)
    try:
        system.ask("counter", "add", 2)
        system.run_until_idle()
        for button in lab.exports.widget.children[2].children:
            button.click()
        assert lab.errors.errors == []
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [
            "ui-test-events.jsonl",
            "ui-test-report.html",
            "ui-test-sequence.mmd",
            "ui-test-trace.json",
        ]
        assert json.loads((tmp_path / "ui-test-trace.json").read_text())["traceEvents"]
        assert "sequenceDiagram" in lab.exports.text.value
        assert "<img" in (tmp_path / "ui-test-report.html").read_text()
    finally:
        lab.close()


def test_lab_without_ipywidgets_falls_back_to_text_with_one_hint(
    system: ActorSystem, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_widgets(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ipywidgets" or name.startswith("ipywidgets."):
            raise ImportError("No module named 'ipywidgets'", name="ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_widgets)
    result = ui.lab(system)
    assert isinstance(result, TextLab)
    text = repr(result)
    assert text.count("pip install") == 1
    assert "ipywidgets" in text and "counter" in text
    assert capsys.readouterr().err == ""  # no warnings, no noise
    assert "<pre>" in result._repr_html_()


def test_ui_modules_export_what_they_name() -> None:
    for name in (
        "flow",
        "render",
        "live",
        "graph_view",
        "panels",
        "inspector",
        "eventlog",
        "lab",
        "sequence",
        "exports",
        "messages",
        "replay",
        "layout",
        "support",
        "hooks",
    ):
        module = importlib.import_module(f"spawn_lab.ui.{name}")
        assert isinstance(module.__all__, tuple), name
        for exported in module.__all__:
            assert hasattr(module, exported), f"spawn_lab.ui.{name}.{exported}"


def test_importing_spawn_lab_loads_no_ui_libraries() -> None:
    import subprocess

    code = (
        "import sys, spawn_lab, spawn_lab.ui\n"
        "print([m for m in ('ipywidgets', 'matplotlib', 'networkx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
