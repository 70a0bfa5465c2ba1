"""Facts into projections into tables, through the ActorSystem (spec §8.2-§8.4, §11 G52)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

import spawn_lab as sl
from spawn_lab.core.effects import Upsert
from spawn_lab.core.errors import StoreError
from spawn_lab.core.model import ActorId, ViewSpec
from spawn_lab.runtime.projections import Projections
from spawn_lab.stores.memory import MemoryStore
from spawn_lab.stores.tables import snake_case

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = pytest.mark.timeout(60)


def source(pb: Any, name: str) -> sl.Actor:
    """A sourceable UNNAMED account whose state is the protobuf ``Account``."""
    actor = sl.Actor(name, kind="unnamed", state=pb.Account(), sourceable=True)

    @actor.action
    def deposit(ctx: sl.Context, amount: int) -> sl.Value:
        new = pb.Account(id=ctx.self.name, balance=ctx.state.balance + amount)
        return sl.Value(new.balance, state=new)

    return actor


def test_projection_gets_source_state_caller_and_metadata_and_upserts_by_actor_id(
    backend: Backend, pb: Any
) -> None:
    """G52: a projection subscribed {actor: src, source_action: a, action: h} → h is invoked
    asynchronously with value = the source state, caller = the source id and the source's
    metadata; its returned state is upserted into its table keyed by the actor_id field."""
    src_name, proj_name = backend.projection("account"), backend.projection("balances")
    seen: list[tuple[Any, ActorId | None, dict[str, str]]] = []
    proj = sl.Actor(
        proj_name,
        kind="projection",
        state=pb.AccountRow(),
        subjects=[sl.ProjectionSubject(src_name, "deposit", "on_deposit")],
    )

    @proj.action
    def on_deposit(ctx: sl.Context, fact: Any) -> sl.Value:
        seen.append((fact, ctx.caller, dict(ctx.metadata)))
        count = ctx.state.deposits + 1 if ctx.state.account_id == fact.id else 1
        row = pb.AccountRow(
            account_id=fact.id, name=fact.id.upper(), balance=fact.balance, deposits=count
        )
        return sl.Value(state=row)

    with backend.open() as system:
        system.register(source(pb, src_name))
        system.register(proj)
        for amount in (5, 7):
            system.ask("acct-1", "deposit", amount, register_ref=src_name, metadata={"m": "v"})
        system.ask("acct-2", "deposit", 1, register_ref=src_name)
        system.run_until_idle(timeout=10)

        facts = [(f.id, f.balance) for f, _, _ in seen]
        assert facts == [("acct-1", 5), ("acct-1", 12), ("acct-2", 1)]
        assert all(isinstance(f, pb.Account) for f, _, _ in seen)
        assert seen[0][1] == ActorId("acct-1", system.name, src_name)
        assert seen[0][2] == {"m": "v"} and seen[2][2] == {}
        rows = system.projection_rows(proj_name)
        assert [(r["account_id"], r["name"], r["balance"]) for r in rows] == [
            ("acct-1", "ACCT-1", 12),
            ("acct-2", "ACCT-2", 1),
        ]
        # the rows are in the store's own database, as another connection sees them
        stored = backend.tables().rows(snake_case(proj_name), system.name)
        assert sorted(r["account_id"] for r in stored) == ["acct-1", "acct-2"]


def test_projection_json_state_becomes_columns_of_its_keys(backend: Backend) -> None:
    """§8.4 for JSON states: one column per key (nested values as JSON), key = "id"."""
    src_name, proj_name = backend.projection("wallet"), backend.projection("wallets")
    src = sl.Actor(src_name, kind="unnamed", state={"coins": 0}, sourceable=True)

    @src.action
    def add(ctx: sl.Context, n: int) -> sl.Value:
        return sl.Value(state={"coins": ctx.state["coins"] + n})

    proj = sl.Actor(
        proj_name,
        kind="projection",
        state={},
        subjects=[sl.ProjectionSubject(src_name, "add", "fold")],
    )

    @proj.action
    def fold(ctx: sl.Context, fact: dict[str, Any]) -> sl.Value:
        assert ctx.caller is not None
        owner = ctx.caller.name
        return sl.Value(state={"id": owner, "coins": fact["coins"], "meta": {"by": [owner]}})

    with backend.open() as system:
        system.register(src)
        system.register(proj)
        system.ask("w1", "add", 3, register_ref=src_name)
        system.ask("w1", "add", 4, register_ref=src_name)
        system.run_until_idle(timeout=10)
        assert system.projection_rows(proj_name) == [
            {"id": "w1", "coins": 7, "meta": {"by": ["w1"]}}
        ]


def test_projection_rows_outlive_the_system(backend: Backend, pb: Any) -> None:
    """§8.4: rows and views are still there after a restart (a new system on the same store),
    before any new fact arrives."""
    proj_name = backend.projection("durable")
    table = snake_case(proj_name)
    proj = sl.Actor(
        proj_name,
        kind="projection",
        state=pb.AccountRow(),
        subjects=[sl.ProjectionSubject("nobody", "x", "put")],
    )

    @proj.action
    def put(ctx: sl.Context, row: Any) -> sl.Value:
        return sl.Value(state=row)

    view = ViewSpec(
        query=f"SELECT * FROM {table} ORDER BY account_id",
        map_to="rows",
        output_type="spawn_lab.projtest.AccountRows",
    )
    defn = dataclasses.replace(proj.definition(), views={"all": view})
    with backend.open() as system:
        system.register(defn)
        system.ask(proj_name, "put", pb.AccountRow(account_id="a", balance=1))
    with backend.open() as system:
        system.register(defn)
        reply = system.ask(proj_name, "all")
        assert [(r.account_id, r.balance) for r in reply.rows] == [("a", 1)]
        assert system.projection_rows(proj_name)[0]["account_id"] == "a"


def test_projection_upsert_failure_is_reported_and_retried() -> None:
    """A failed upsert never raises into the driver: on_error hears of it, and it is retried
    (before the next upsert, or a read) until the database takes it; a newer state of the same
    row replaces it."""
    errors: list[tuple[str, str]] = []
    projections = Projections(
        MemoryStore(), "s", on_error=lambda u, e: errors.append((u.actor_id.name, str(e)))
    )
    real = projections.tables.upsert
    failing = {"left": 3}

    def flaky(*args: Any, **kwargs: Any) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise StoreError("disk full")
        real(*args, **kwargs)

    projections.tables.upsert = flaky  # type: ignore[method-assign]
    projections.upsert(Upsert(ActorId("p", "s"), {"id": "a", "n": 1}))
    projections.upsert(Upsert(ActorId("p", "s"), {"id": "a", "n": 2}))  # retry fails, then this
    assert errors == [("p", "disk full")] * 3
    assert projections.flush() == 0
    assert projections.rows("p") == [{"id": "a", "n": 2}]


def test_projection_staged_upserts_are_seen_by_reads_in_engine_order() -> None:
    """Upserts staged under the system lock are written, in order, before any read: a reader
    never misses a state change the engine already made, and an older state never lands last."""
    projections = Projections(MemoryStore(), "s")
    first = Upsert(ActorId("p", "s"), {"id": "a", "n": 1})
    second = Upsert(ActorId("p", "s"), {"id": "a", "n": 2})
    projections.stage([first, "not an upsert", second])
    assert projections.rows("p") == [{"id": "a", "n": 2}]
    projections.upsert(first)  # the driver performing the effects afterwards changes nothing
    projections.upsert(second)
    assert projections.rows("p") == [{"id": "a", "n": 2}]
