"""View actions of PROJECTION actors through the ActorSystem (spec §8.5, §11 G54-G56)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

import spawn_lab as sl
from spawn_lab.core.errors import InvocationError
from spawn_lab.core.model import ActorDefinition, ViewSpec
from spawn_lab.stores.tables import snake_case

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = pytest.mark.timeout(60)

ROWS_TYPE = "spawn_lab.projtest.AccountRows"


def projection(
    name: str,
    views: dict[str, ViewSpec],
    *,
    state: object,
    calls: list[str] | None = None,
) -> ActorDefinition:
    """A PROJECTION actor whose ``put`` action makes its payload the state (one upsert each).

    Its handlers record their calls, including one named like the first view, which a view
    must never reach.
    """
    actor = sl.Actor(
        name,
        kind="projection",
        state=state,
        subjects=[sl.ProjectionSubject("nobody", "never", "put")],
    )
    log = calls if calls is not None else []

    @actor.action
    def put(ctx: sl.Context, row: Any) -> sl.Value:
        log.append("put")
        return sl.Value(state=row)

    def shadow(ctx: sl.Context, payload: Any) -> str:
        log.append("handler")
        return "the handler ran"

    actor.action(shadow, name=next(iter(views)))
    return dataclasses.replace(actor.definition(), views=views)


def fill(system: sl.ActorSystem, name: str, rows: list[Any]) -> None:
    for row in rows:
        system.ask(name, "put", row)


def ten_rows(pb: Any) -> list[Any]:
    return [pb.AccountRow(account_id=f"a{i}", name=str(i), balance=i) for i in range(1, 11)]


def test_view_without_a_required_parameter_names_it(backend: Backend, pb: Any) -> None:
    """G54: a view query `... WHERE name = :name` with params {} → an error naming the
    missing parameter (a dict payload and a message without that field alike)."""
    name = backend.projection("people")
    query = f"SELECT * FROM {snake_case(name)} WHERE name = :name"
    views = {"by_name": ViewSpec(query=query, map_to="rows", output_type=ROWS_TYPE)}
    with backend.open() as system:
        system.register(projection(name, views, state=pb.AccountRow()))
        fill(system, name, ten_rows(pb))
        for payload in ({}, {"nam": "x"}, pb.Summary(total=1)):
            with pytest.raises(InvocationError, match=r"Required parameter\(s\): name\b"):
                system.ask(name, "by_name", payload)


def test_view_ignores_extra_parameters(backend: Backend, pb: Any) -> None:
    """G54: parameters the query does not use are ignored (message fields and dict keys)."""
    name = backend.projection("people")
    query = f"SELECT * FROM {snake_case(name)} WHERE name = :name"
    views = {"by_name": ViewSpec(query=query, map_to="rows", output_type=ROWS_TYPE)}
    with backend.open() as system:
        system.register(projection(name, views, state=pb.AccountRow()))
        fill(system, name, ten_rows(pb))
        for payload in (pb.ByName(name="7", unused="x"), {"name": "7", "extra": [1, 2]}):
            reply = system.ask(name, "by_name", payload)
            assert [(r.account_id, r.balance) for r in reply.rows] == [("a7", 7)]


def test_view_paginates_page_2_of_3_in_text_order(backend: Backend, pb: Any) -> None:
    """G55: page=2, page_size=3 over 10 rows named "1".."10", ordered by name as text →
    "3", "4", "5"; without metadata the view's page_size applies, and page 1."""
    name = backend.projection("paged")
    query = f"SELECT * FROM {snake_case(name)} ORDER BY name"
    views = {"list": ViewSpec(query=query, map_to="rows", page_size=4, output_type=ROWS_TYPE)}
    with backend.open() as system:
        system.register(projection(name, views, state=pb.AccountRow()))
        fill(system, name, ten_rows(pb))
        reply = system.ask(name, "list", metadata={"page": "2", "page_size": "3"})
        assert [r.name for r in reply.rows] == ["3", "4", "5"]
        reply = system.ask(name, "list")
        assert [r.name for r in reply.rows] == ["1", "10", "2", "3"]
        reply = system.ask(name, "list", metadata={"page": "4"})
        assert [r.name for r in reply.rows] == []


def test_view_paginates_json_rows_with_the_default_page_size(backend: Backend) -> None:
    """G55 for JSON states: the reply is {map_to: rows}; no page_size anywhere → 10."""
    name = backend.projection("jpaged")
    query = f"SELECT id, name FROM {snake_case(name)} ORDER BY name"
    views = {"list": ViewSpec(query=query, map_to="people", page_size=0)}
    with backend.open() as system:
        system.register(projection(name, views, state={}))
        fill(system, name, [{"id": f"j{i}", "name": str(i)} for i in range(1, 13)])
        page2 = system.ask(name, "list", metadata={"page": "2", "page_size": "3"})
        # text order: 1, 10, 11, 12, 2, 3, ...
        assert page2 == {"people": [{"id": f"j{i}", "name": str(i)} for i in (12, 2, 3)]}
        assert len(system.ask(name, "list")["people"]) == 10
        with pytest.raises(InvocationError, match="'page' must be a positive integer"):
            system.ask(name, "list", metadata={"page": "0"})


def test_view_never_calls_the_handler_and_fills_map_to(backend: Backend, pb: Any) -> None:
    """G56: a view action invocation → the user function is not called; the reply is the
    output message with its map_to field filled, every §8.4 column type decoded back."""
    name = backend.projection("typed")
    calls: list[str] = []
    query = f"SELECT * FROM {snake_case(name)} WHERE balance >= :balance ORDER BY account_id"
    views = {"rich": ViewSpec(query=query, map_to="rows", output_type=ROWS_TYPE)}
    with backend.open() as system:
        system.register(projection(name, views, state=pb.AccountRow(), calls=calls))
        row = pb.AccountRow(
            account_id="z",
            name="zed",
            balance=2**40,
            deposits=-3,
            active=True,
            ratio=0.5,
            exact=1.25,
            blob=b"\x00\xff",
            level=pb.HIGH,
            labels=["x", "y"],
            note="",
        )
        row.seen.FromJsonString("2024-05-01T12:00:00Z")
        fill(system, name, [row, pb.AccountRow(account_id="y", balance=1)])
        calls.clear()
        reply = system.ask(name, "rich", {"balance": 2})
        assert calls == []
        assert isinstance(reply, pb.AccountRows)
        [got] = reply.rows
        assert got.created_at.endswith("Z")  # the table's own created_at, as ISO-8601 text
        got.ClearField("created_at")
        assert got == row
        assert got.HasField("note")  # an empty optional is "", not NULL


def test_view_before_any_fact_answers_empty(backend: Backend, pb: Any) -> None:
    """A view asked before the projection ever upserted finds an empty table, not an error
    (the table is made from the projection's state type)."""
    name = backend.projection("fresh")
    query = f"SELECT * FROM {snake_case(name)}"
    views = {"all": ViewSpec(query=query, map_to="rows", output_type=ROWS_TYPE)}
    with backend.open() as system:
        system.register(projection(name, views, state=pb.AccountRow()))
        reply = system.ask(name, "all")
        assert isinstance(reply, pb.AccountRows) and list(reply.rows) == []


def test_view_declared_on_a_notebook_actor(backend: Backend) -> None:
    """The notebook API: ``Actor(..., views={name: ViewSpec(...)})`` on a JSON projection."""
    name = backend.projection("notes")
    actor = sl.Actor(
        name,
        kind="projection",
        state={},
        subjects=[sl.ProjectionSubject("nobody", "never", "put")],
        views={
            "tagged": ViewSpec(
                query=f"SELECT id FROM {snake_case(name)} WHERE tag = :tag ORDER BY id",
                map_to="ids",
            )
        },
    )

    @actor.action
    def put(ctx: sl.Context, row: Any) -> sl.Value:
        return sl.Value(state=row)

    with backend.open() as system:
        system.register(actor)
        fill(system, name, [{"id": f"n{i}", "tag": "odd" if i % 2 else "even"} for i in range(5)])
        assert system.ask(name, "tagged", {"tag": "odd"}) == {"ids": [{"id": "n1"}, {"id": "n3"}]}
