"""Exports (Chrome trace, Mermaid, HTML report, JSONL + replay) and the sequence diagram."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from spawn_lab.core.errors import InvocationError
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui import exports
from spawn_lab.ui.exports import Trace
from spawn_lab.ui.messages import messages
from spawn_lab.ui.sequence import SequenceDiagram

from .conftest import build_mesh


def run_workload(system: ActorSystem) -> None:
    system.ask("counter", "add", 2)
    system.ask("counter", "relay", {"x": 1})
    system.spawn("w1", "worker")
    system.ask("w1", "hello", "hi")
    with pytest.raises(InvocationError):
        system.ask("counter", "boom")
    system.run_until_idle()


def test_chrome_trace_is_valid_json_with_slices_and_causal_flows(system: ActorSystem) -> None:
    run_workload(system)
    trace = json.loads(json.dumps(exports.chrome_trace(system.events(), system="ui-test")))
    events = trace["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert {e["name"] for e in slices} >= {"add", "log", "relay", "hello", "boom"}
    assert all(e["dur"] > 0 and e["ts"] >= 0 for e in slices)
    assert any(e["args"]["failed"] for e in slices if e["name"] == "boom")
    starts = {e["id"] for e in events if e["ph"] == "s"}
    finishes = {e["id"] for e in events if e["ph"] == "f"}
    assert starts and starts == finishes
    threads = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"counter", "logger", "w1"} <= threads


def test_mermaid_has_participants_arrows_and_failure(system: ActorSystem) -> None:
    run_workload(system)
    text = exports.mermaid(system.events())
    assert text.startswith("sequenceDiagram\n")
    assert "participant p0 as external" in text
    assert re.search(r"p0->>p\d+: #35;\d+ add", text)  # "#" written as the entity #35;
    assert "--x" in text and "boom on purpose" in text
    assert "(pipe)" in text and "(forward)" in text and "(broadcast)" in text
    assert "-->>" in text  # replies


def test_html_report_is_self_contained_with_the_graph_image(system: ActorSystem) -> None:
    run_workload(system)
    page = exports.html_report(system)
    assert page.startswith("<!DOCTYPE html>")
    assert "<img alt='mesh graph' src='data:image/png;base64," in page
    assert "boom on purpose" in page and "counter" in page
    assert "http" not in page.replace("https://", "").split("<img")[0]  # nothing fetched


def test_jsonl_round_trip_keeps_every_event(system: ActorSystem, tmp_path: Path) -> None:
    run_workload(system)
    path = tmp_path / "log.jsonl"
    count = exports.write_jsonl(system.events(), path, system="ui-test")
    records = exports.read_jsonl(path)
    assert count == len(records) == len(system.events())
    assert [r["seq"] for r in records] == [e.seq for e in system.events()]
    invoke = next(r for r in records if r["kind"] == "invoke")
    assert invoke["detail"] == {
        "via": "invoke",
        "caller": "",
        "asynchronous": False,
        "payload": invoke["detail"]["payload"],
        "metadata": {},
    }
    save_or_fail = [r for r in records if r["kind"] == "fail"]
    assert "boom on purpose" in save_or_fail[0]["detail"]["error"]
    assert json.loads(path.read_text().splitlines()[0])["format"] == exports.FORMAT


def test_jsonl_reader_refuses_other_files() -> None:
    with pytest.raises(ValueError, match="not a spawn_lab trace log"):
        exports.read_jsonl(io.StringIO('{"hello": 1}\n'))


def test_replay_reissues_external_invocations_held_for_stepping(system: ActorSystem) -> None:
    system.ask("counter", "add", 2)
    system.spawn("w1", "worker")
    third = system.tell("w1", "hello", "hi")
    system.run_until_idle()
    payloads = {1: (2, {}), third: ("hi", {"k": "v"})}
    buffer = io.StringIO()
    exports.write_jsonl(system.events(), buffer, system="ui-test", payloads=payloads)
    buffer.seek(0)
    with ActorSystem("replayed", store="memory://") as fresh:
        build_mesh(fresh)
        result = exports.replay(fresh, buffer)
        assert fresh.paused
        assert result.spawned == ["w1"] and len(result.invocations) == 2
        assert result.missing_payloads == 0 and result.skipped == []
        held = fresh.held()
        assert [(i.actor, i.action, i.payload) for i in held] == [
            ("counter", "add", 2),
            ("w1", "hello", "hi"),
        ]
        assert dict(held[1].metadata) == {"k": "v"}
        assert fresh.state("counter") == {"value": 0}
        fresh.step()
        assert fresh.state("counter") == {"value": 2}
        fresh.run_until_idle()
        assert fresh.state("w1") == {"greeted": 1}
        assert "2 invocations held" in result._repr_html_()


def test_replay_uses_recorded_payloads_and_skips_missing_actors(system: ActorSystem) -> None:
    system.ask("logger", "log", 1)
    system.ask("counter", "add", 1)
    records = [exports.event_record(e) for e in system.events()]
    assert [r["detail"]["payload"] for r in records if r["kind"] == "invoke"][:2] == [1, 1]
    with ActorSystem("bare", store="memory://") as fresh:
        result = exports.replay(fresh, records)
        assert result.missing_payloads == 0
        assert len(result.skipped) == 2 and "not found" in result.skipped[0]


def test_trace_handle_has_table_repr_and_exports(system: ActorSystem, tmp_path: Path) -> None:
    run_workload(system)
    trace = Trace(system, last=10)
    page = trace._repr_html_()
    assert "<table" in page and page.count("<tr>") == 11
    assert trace.mermaid().startswith("sequenceDiagram")
    trace.chrome(tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert trace.jsonl(tmp_path / "t.jsonl") == len(trace)


def test_messages_route_replies_like_the_graph(system: ActorSystem) -> None:
    system.ask("counter", "relay", 3)
    found = [(m.src, m.dst, m.kind) for m in messages(system.events())]
    assert found == [
        ("external", "counter", "invoke"),
        ("counter", "logger", "pipe"),
        ("logger", "external", "reply"),
    ]


def test_sequence_diagram_svg_shows_causality_and_failures(system: ActorSystem) -> None:
    run_workload(system)
    diagram = SequenceDiagram(system.events(), limit=100)
    svg = diagram.svg()
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for name in ("external", "counter", "logger", "#news", "w1"):
        assert f">{name}</text>" in svg
    relay = next(m for m in diagram.messages if m.action == "relay")
    assert f"← #{relay.invocation}" in svg  # the pipe hop names its cause
    assert "#e00000" in svg and "✗" in svg
    assert diagram._repr_html_().startswith("<div")
