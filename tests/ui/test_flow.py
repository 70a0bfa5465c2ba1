"""The flow model: trace events folded into a graph of actors, channels and typed edges."""

from __future__ import annotations

import pytest

from spawn_lab.core.effects import Via
from spawn_lab.core.errors import InvocationError
from spawn_lab.core.trace import EventKind, TraceBus
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.flow import DEAD_LETTERS, EXTERNAL, FlowModel, MessageKind, NodeRole, channel_node


def test_flow_external_ask_makes_invoke_and_reply_edges(system: ActorSystem) -> None:
    system.ask("logger", "log", 1)
    model = FlowModel()
    model.sync(system.trace)
    edges = model.edges()
    assert edges[(EXTERNAL, "logger", MessageKind.INVOKE)]["count"] == 1
    assert edges[("logger", EXTERNAL, MessageKind.REPLY)]["count"] == 1
    assert model.nodes()[EXTERNAL]["role"] is NodeRole.EXTERNAL


def test_flow_tell_has_no_reply_edge(system: ActorSystem) -> None:
    system.tell("logger", "log", 1)
    system.run_until_idle()
    model = FlowModel()
    model.sync(system.trace)
    assert (EXTERNAL, "logger", MessageKind.INVOKE) in model.edges()
    assert ("logger", EXTERNAL, MessageKind.REPLY) not in model.edges()


def test_flow_side_effect_and_broadcast_go_through_a_channel_node(system: ActorSystem) -> None:
    system.ask("counter", "add", 2)
    system.run_until_idle()
    model = FlowModel()
    model.sync(system.trace)
    edges = model.edges()
    news = channel_node("news")
    assert edges[("counter", "logger", MessageKind.SIDE_EFFECT)]["count"] == 1
    assert edges[("counter", news, MessageKind.BROADCAST)]["count"] == 1
    assert edges[(news, "counter", MessageKind.BROADCAST)]["count"] == 1
    assert model.nodes()[news]["role"] is NodeRole.CHANNEL
    assert model.graph.has_edge("counter", news, key=MessageKind.BROADCAST)


def test_flow_pipe_reply_goes_back_to_the_original_caller(system: ActorSystem) -> None:
    system.ask("counter", "relay", 5)
    model = FlowModel()
    model.sync(system.trace)
    edges = model.edges()
    assert edges[("counter", "logger", MessageKind.PIPE)]["count"] == 1
    assert edges[("logger", EXTERNAL, MessageKind.REPLY)]["count"] == 1
    assert ("counter", EXTERNAL, MessageKind.REPLY) not in edges


def test_flow_forward_from_spawned_instance(system: ActorSystem) -> None:
    system.spawn("w1", "worker")
    system.ask("w1", "hello", 1)
    model = FlowModel()
    model.sync(system.trace)
    assert ("w1", "logger", MessageKind.FORWARD) in model.edges()
    node = model.nodes()["w1"]
    assert (node["kind"], node["parent"], node["active"]) == ("UNNAMED", "worker", True)
    assert model.nodes()["worker"]["template"] is True


def test_flow_failure_marks_the_edge_and_the_actor(system: ActorSystem) -> None:
    with pytest.raises(InvocationError):
        system.ask("counter", "boom")
    model = FlowModel()
    model.sync(system.trace)
    edge = model.edges()[(EXTERNAL, "counter", MessageKind.INVOKE)]
    assert edge["failed"] and edge["failures"] == 1
    assert model.nodes()["counter"]["failures"] == 1
    assert "boom on purpose" in model.nodes()["counter"]["error"]
    assert model.failed_edges() == [(EXTERNAL, "counter", MessageKind.INVOKE)]


def test_flow_feed_is_incremental_and_skips_seen_events(system: ActorSystem) -> None:
    model = FlowModel()
    system.ask("logger", "log", 1)
    first = model.sync(system.trace)
    again = model.feed(system.trace.raw())
    system.ask("logger", "log", 2)
    more = model.sync(system.trace)
    assert first > 0 and again == 0 and more == 2  # invoke and reply (no wait: no deliver)
    assert model.edges()[(EXTERNAL, "logger", MessageKind.INVOKE)]["count"] == 2
    assert model.seq == system.trace_seq()


def test_flow_versions_change_only_with_topology(system: ActorSystem) -> None:
    model = FlowModel()
    system.ask("logger", "log", 1)
    model.sync(system.trace)
    nodes, edges = model.node_version, model.edge_version
    system.ask("logger", "log", 2)
    model.sync(system.trace)
    assert (model.node_version, model.edge_version) == (nodes, edges)


def test_flow_gap_in_seq_counts_lost_events() -> None:
    bus = TraceBus(capacity=10)
    for i in range(30):
        bus.emit(float(i), EventKind.INVOKE, i + 1, 0, "a", "x", (Via.EXTERNAL, "", True))
    model = FlowModel()
    model.feed(bus.raw()[:2])
    model.feed(bus.raw()[5:])
    assert model.lost == 3  # seq 23, 24 and 25 never arrived


def test_flow_drop_goes_to_dead_letters() -> None:
    bus = TraceBus()
    bus.emit(0.0, EventKind.INVOKE, 1, 0, "a", "go", (Via.EXTERNAL, "", True))
    bus.emit(0.0, EventKind.DROP, 2, 1, "ghost", "boo", "actor 'ghost' not found")
    model = FlowModel()
    model.sync(bus)
    edge = model.edges()[("a", DEAD_LETTERS, MessageKind.SIDE_EFFECT)]
    assert edge["failed"]
    assert model.nodes()[DEAD_LETTERS]["role"] is NodeRole.DEAD_LETTERS


def test_flow_timer_is_a_self_edge() -> None:
    bus = TraceBus()
    bus.emit(0.0, EventKind.TIMER, 1, 0, "ticker", "tick", 100)
    bus.emit(0.0, EventKind.INVOKE, 1, 0, "ticker", "tick", (Via.TIMER, "ticker", True))
    model = FlowModel()
    model.sync(bus)
    assert ("ticker", "ticker", MessageKind.TIMER) in model.edges()


def test_flow_deactivate_marks_actor_passive(system: ActorSystem) -> None:
    system.ask("counter", "add", 1)
    system.run_until_idle()
    system.deactivate("counter")
    model = FlowModel()
    model.sync(system.trace)
    assert model.nodes()["counter"]["active"] is False
    assert model.nodes()["counter"]["revision"] >= 1


def test_flow_describe_fills_kinds_for_a_late_model(system: ActorSystem) -> None:
    model = FlowModel()
    model.describe(system.actors())
    assert model.nodes()["counter"]["kind"] == "NAMED"
    assert model.nodes()["worker"]["template"] is True
    assert "FlowModel" in model._repr_html_()
