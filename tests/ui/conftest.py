"""A small mesh that exercises every message kind, shared by the UI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spawn_lab.core.model import Broadcast, Forward, Pipe, SideEffect, Value
from spawn_lab.runtime.actors import Actor
from spawn_lab.runtime.system import ActorSystem


def build_mesh(system: ActorSystem) -> ActorSystem:
    """counter (named, subscribes to 'news'), logger (stateless), worker (template)."""
    counter = Actor("counter", state={"value": 0}, channels=["news"])

    @counter.action
    def add(ctx, amount):  # type: ignore[no-untyped-def]
        total = ctx.state["value"] + amount
        return Value(
            total,
            state={"value": total},
            effects=(SideEffect("logger", "log", total),),
            broadcast=Broadcast("news", total),
        )

    @counter.action
    def receive(ctx, payload):  # type: ignore[no-untyped-def]
        return None

    @counter.action
    def boom(ctx, payload):  # type: ignore[no-untyped-def]
        raise ValueError("boom on purpose")

    @counter.action
    def relay(ctx, payload):  # type: ignore[no-untyped-def]
        return Value(payload, pipe=Pipe("logger", "log"))

    logger = Actor("logger", stateful=False)

    @logger.action
    def log(ctx, payload):  # type: ignore[no-untyped-def]
        return payload

    worker = Actor("worker", kind="UNNAMED", state={"greeted": 0})

    @worker.action
    def hello(ctx, payload):  # type: ignore[no-untyped-def]
        return Value(
            ctx.self.name,
            state={"greeted": ctx.state["greeted"] + 1},
            forward=Forward("logger", "log"),
        )

    for actor in (counter, logger, worker):
        system.register(actor)
    return system


@pytest.fixture
def system() -> Iterator[ActorSystem]:
    with ActorSystem("ui-test", store="memory://") as sys_:
        yield build_mesh(sys_)
