"""Projection tables (spec §8.4) and the view query rewrite (§8.5), below the actor system."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from spawn_lab.core.errors import PayloadError, RegistrationError, StoreError
from spawn_lab.runtime.projections import table_of
from spawn_lab.stores.tables import (
    SQLITE,
    Column,
    ColumnType,
    TableSpec,
    parse_view,
    snake_case,
    table_name,
)

if TYPE_CHECKING:
    from conftest import Backend

pytestmark = pytest.mark.timeout(60)

#: §8.4's type table for PostgreSQL, as information_schema reports it.
PG_TYPES = {
    "account_id": "text",
    "name": "text",
    "balance": "bigint",
    "deposits": "integer",
    "active": "boolean",
    "ratio": "real",
    "exact": "double precision",
    "blob": "bytea",
    "level": "text",
    "labels": "jsonb",
    "seen": "jsonb",
    "note": "text",
    "created_at": "timestamp with time zone",
    "updated_at": "timestamp with time zone",
    "spawn_lab_system": "text",
}
#: The SQLite analogue: same columns, types with the matching affinity.
SQLITE_TYPES = {
    **dict.fromkeys(PG_TYPES, "TEXT"),
    "balance": "BIGINT",
    "deposits": "INTEGER",
    "active": "BOOLEAN",
    "ratio": "REAL",
    "exact": "DOUBLE PRECISION",
    "blob": "BLOB",
    "labels": "JSON_TEXT",
    "seen": "JSON_TEXT",
}


def declared_types(backend: Backend, projection: str) -> dict[str, str]:
    table = table_name(snake_case(projection))
    tables = backend.tables()
    with tables._session("read types", False) as conn:
        rows = conn.execute(tables.dialect.columns_query, (table,)).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def index_names(backend: Backend, projection: str) -> set[str]:
    table = table_name(snake_case(projection))
    if backend.kind == "postgres":
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = %s"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
    with backend.tables()._session("read indexes", False) as conn:
        return {str(row[0]) for row in conn.execute(sql, (table,)).fetchall()}


def full_row(pb: Any, **changes: Any) -> Any:
    row = pb.AccountRow(
        account_id="a1",
        name="ana",
        balance=2**40,
        deposits=3,
        active=True,
        ratio=0.5,
        exact=1.25,
        blob=b"\x00\xff",
        level=pb.HIGH,
        labels=["x", "y"],
        created_at="ignored",
    )
    row.seen.FromJsonString("2024-05-01T12:00:00Z")
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def test_projection_table_created_with_section_8_4_types_and_indexes(
    backend: Backend, pb: Any
) -> None:
    """§8.4 / G53 (create): one column per field with §8.4's types, created_at/updated_at,
    a field named created_at skipped, and an index for the searchable field."""
    projection = snake_case(backend.projection("typed"))
    spec, row = table_of(full_row(pb), projection, "typed")
    tables = backend.tables()
    tables.upsert(spec, backend.system_name(), row)
    expected = PG_TYPES if backend.kind == "postgres" else SQLITE_TYPES
    assert declared_types(backend, projection) == expected
    table = table_name(projection)
    assert f"idx_{table}_name" in index_names(backend, projection)
    assert not any(name.endswith("_balance") for name in index_names(backend, projection))
    [stored] = tables.rows(projection, backend.system_name())
    assert stored["account_id"] == "a1"
    assert stored["balance"] == 2**40
    assert stored["active"] is True
    assert stored["blob"] == b"\x00\xff"
    assert stored["level"] == "HIGH"
    assert stored["labels"] == ["x", "y"]
    assert stored["seen"] == "2024-05-01T12:00:00Z"
    assert stored["note"] is None  # an unset optional field is NULL
    assert stored["created_at"].endswith("Z") and stored["updated_at"].endswith("Z")


def test_projection_table_readds_dropped_column_and_upserts_twice(
    backend: Backend, pb: Any
) -> None:
    """G53: create, add a missing column after one is dropped, upsert twice → the row is
    updated (one row, new values, created_at kept)."""
    projection = snake_case(backend.projection("evolve"))
    system = backend.system_name()
    tables = backend.tables()
    spec, row = table_of(full_row(pb), projection, "evolve")
    tables.ensure(spec)
    table = table_name(projection)
    backend.execute(f'ALTER TABLE "{table}" DROP COLUMN "deposits"')
    assert "deposits" not in declared_types(backend, projection)

    tables.ensure(spec)  # what an activation does: missing columns are added again
    assert "deposits" in declared_types(backend, projection)
    tables.upsert(spec, system, row)
    [first] = tables.rows(projection, system)
    spec2, row2 = table_of(full_row(pb, balance=7, deposits=4, name="bea"), projection, "evolve")
    tables.upsert(spec2, system, row2)
    [second] = tables.rows(projection, system)
    assert (second["balance"], second["deposits"], second["name"]) == (7, 4, "bea")
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] >= first["updated_at"]


def test_projection_table_heals_a_column_dropped_behind_its_back(backend: Backend, pb: Any) -> None:
    """§8.4 schema evolution: an upsert that fails on a missing column re-reads the schema,
    adds the column and succeeds (no restart needed)."""
    projection = snake_case(backend.projection("heal"))
    system = backend.system_name()
    tables = backend.tables()
    spec, row = table_of(full_row(pb), projection, "heal")
    tables.upsert(spec, system, row)
    backend.execute(f'ALTER TABLE "{table_name(projection)}" DROP COLUMN "ratio"')
    spec, row = table_of(full_row(pb, ratio=0.25), projection, "heal")
    tables.upsert(spec, system, row)
    assert tables.rows(projection, system)[0]["ratio"] == 0.25


def test_projection_table_keeps_columns_and_adds_new_keys(backend: Backend) -> None:
    """§8.4: columns are never dropped; a JSON state with a new key adds a column; a key the
    state no longer has is NULL in its row (the row is the state)."""
    projection = snake_case(backend.projection("json"))
    system = backend.system_name()
    tables = backend.tables()
    for state in (
        {"id": "k", "n": 1, "flag": True, "nested": {"a": [1, 2]}},
        {"id": "k", "n": 2, "extra": "new"},
    ):
        spec, row = table_of(state, projection, "json")
        tables.upsert(spec, system, row, clear_missing=True)
    [stored] = tables.rows(projection, system)
    assert {k: v for k, v in stored.items() if not k.endswith("_at")} == {
        "id": "k",
        "n": 2,
        "flag": None,
        "nested": None,
        "extra": "new",
    }


def test_projection_rows_are_scoped_to_their_system(backend: Backend) -> None:
    """Systems sharing a store share the table but never see each other's rows."""
    projection = snake_case(backend.projection("scoped"))
    tables = backend.tables()
    for system, n in (("s1", 1), ("s2", 2)):
        spec, row = table_of({"id": "same", "n": n}, projection, "x")
        tables.upsert(spec, backend.system_name(system), row)
    for system, n in (("s1", 1), ("s2", 2)):
        got = tables.view(
            projection,
            backend.system_name(system),
            f"SELECT id, n FROM {projection}",
            {},
        )
        assert got == [{"id": "same", "n": n}]


def test_projection_table_surrogate_key_is_the_projection_name(backend: Backend, pb: Any) -> None:
    """No actor_id field and no id: one row per projection actor, keyed by its name."""
    projection = snake_case(backend.projection("summary"))
    tables = backend.tables()
    for total in (1, 5):
        spec, row = table_of(pb.Summary(total=total), projection, "summary-1")
        assert spec.key == "id"
        tables.upsert(spec, backend.system_name(), row)
    rows = tables.rows(projection, backend.system_name())
    assert [(r["id"], r["total"]) for r in rows] == [("summary-1", 5)]


def test_view_is_read_only(backend: Backend) -> None:
    """§8.5: views never change a projection (the query runs in a read-only transaction)."""
    projection = snake_case(backend.projection("ro"))
    system = backend.system_name()
    tables = backend.tables()
    spec, row = table_of({"id": "k", "n": 1}, projection, "x")
    tables.upsert(spec, system, row)
    with pytest.raises(StoreError):
        tables.view(projection, system, f'DELETE FROM "{table_name(projection)}"', {})
    assert len(tables.rows(projection, system)) == 1


def test_view_keeps_its_own_limit_and_with_clause(backend: Backend) -> None:
    """§8.5: LIMIT/OFFSET are appended only when the query has none at the outer level; a
    query's own WITH clause still sees the projection's rows."""
    projection = snake_case(backend.projection("own"))
    system = backend.system_name()
    tables = backend.tables()
    for i in range(1, 6):
        spec, row = table_of({"id": str(i), "n": i}, projection, "x")
        tables.upsert(spec, system, row)
    own_limit = f"SELECT n FROM {projection} ORDER BY n DESC LIMIT 2"
    assert tables.view(projection, system, own_limit, {}, page=3, page_size=1) == [
        {"n": 5},
        {"n": 4},
    ]
    nested = (
        f"SELECT n FROM {projection} WHERE n IN (SELECT n FROM {projection} ORDER BY n LIMIT 4) "
        "ORDER BY n"
    )
    assert tables.view(projection, system, nested, {}, page=2, page_size=3) == [{"n": 4}]
    with_query = (
        f"WITH big AS (SELECT n FROM {projection} WHERE n >= :min) SELECT count(*) AS c FROM big;"
    )
    assert tables.view(projection, system, with_query, {"min": 3}) == [{"c": 3}]


def test_view_parameters_skip_strings_comments_and_casts() -> None:
    """`:name` inside quotes or comments, and `::` casts, are not parameters."""
    parsed = parse_view(
        "SELECT ':no', \"a:b\", x::text /* :no */ -- :no\n"
        "FROM t WHERE a = :one AND b = :two AND c = :one"
    )
    assert parsed.params == ("one", "two")
    assert parse_view("SELECT * FROM t WHERE id = ANY(ARRAY[:a, :b])").params == ("a", "b")
    assert not parsed.has_limit
    assert parse_view("SELECT * FROM (SELECT 1 LIMIT 1) s").has_limit is False
    assert parse_view("select * from t limit 5").has_limit is True
    assert parse_view("with recursive r as (select 1) select * from r").with_clause == (
        "WITH RECURSIVE"
    )


def test_view_missing_parameters_are_named_before_any_sql(backend: Backend) -> None:
    """G54 (at the table level): every missing `:name` is listed."""
    projection = snake_case(backend.projection("params"))
    tables = backend.tables()
    spec, row = table_of({"id": "k", "name": "n"}, projection, "x")
    tables.upsert(spec, backend.system_name(), row)
    query = f"SELECT * FROM {projection} WHERE name = :name AND id = :id"
    with pytest.raises(PayloadError, match=r"^Required parameter\(s\): name, id$"):
        tables.view(projection, backend.system_name(), query, {"other": 1})


def test_projection_names_are_checked_and_snake_cased() -> None:
    """Identifiers are `[a-z0-9_]` only (quoted), so nothing from a name reaches SQL raw."""
    assert snake_case("BalanceView") == "balance_view"
    assert snake_case("HTTPServer") == "http_server"
    assert snake_case("acct-1.v2") == "acct_1v2"
    assert len(table_name("x" * 63)) == 63
    with pytest.raises(RegistrationError):
        TableSpec('x"; DROP TABLE t; --', (Column("id", ColumnType.TEXT),), "id")
    with pytest.raises(RegistrationError):
        TableSpec(
            "ok", (Column("id", ColumnType.TEXT), Column("spawn_lab_system", ColumnType.TEXT)), "id"
        )
    with pytest.raises(PayloadError, match="both become the column"):
        table_of({"userName": 1, "user_name": 2}, "ok", "x")
    assert SQLITE.type_of("json_text") is ColumnType.JSON
