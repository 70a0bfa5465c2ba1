"""Projection tables (spec §8.4) and view queries (§8.5) in real SQL, on SQLite and PostgreSQL.

One table per PROJECTION actor, shared by every system of a store: the table is named
``spawn_lab_proj_<snake_case of the actor>`` and a ``spawn_lab_system`` column scopes its rows,
so forks and several notebook systems can share one database file or server without mixing rows,
and a test run on a shared server cleans up by system. The primary key is
``(spawn_lab_system, <key column>)``. Other columns come from the state (one per protobuf field or
JSON key), plus ``created_at`` and ``updated_at``. Columns are added when missing and never
dropped or changed (§8.4 schema evolution).

View queries name the table as Spawn users write it, by the actor's snake_case name
(``SELECT * FROM balances WHERE name = :name``). :meth:`ProjectionTables.view` runs the query
under a common table expression of that name, which holds only the calling system's rows (a CTE
shadows a table of the same name in both SQLite and PostgreSQL); so a query never sees another
system's rows and never needs to know the prefix. Views run read-only (``PRAGMA query_only`` on
SQLite, ``SET TRANSACTION READ ONLY`` on PostgreSQL): a view never changes a projection.

SQL is built safely: every identifier is checked against ``[a-z0-9_]{1,63}`` and double-quoted;
every value, including page and size, travels as a bound parameter.

This module knows nothing of protobuf. The runtime (:mod:`spawn_lab.runtime.projections`) turns
a state into a :class:`TableSpec` and a row of plain Python values; stores provide connections
(``session``) and this module does the rest.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from spawn_lab.core.errors import PayloadError, RegistrationError, StoreError

__all__ = (
    "POSTGRES_TYPES",
    "SQLITE",
    "SYSTEM_COLUMN",
    "TABLE_PREFIX",
    "Column",
    "ColumnType",
    "Dialect",
    "InMemorySQLite",
    "ParsedView",
    "ProjectionTables",
    "Session",
    "TableSpec",
    "parse_view",
    "postgres_dialect",
    "snake_case",
    "table_name",
)

#: Physical table names start with this, so projection tables never collide with a user's.
TABLE_PREFIX: Final = "spawn_lab_proj_"
#: The column that scopes a row to its actor system (not visible to view queries).
SYSTEM_COLUMN: Final = "spawn_lab_system"
#: Columns every table has; a state field of the same name is skipped (§8.4).
TIMESTAMP_COLUMNS: Final = ("created_at", "updated_at")
#: PostgreSQL silently truncates longer identifiers; we refuse or shorten them instead.
MAX_IDENTIFIER: Final = 63

_IDENTIFIER = re.compile(r"^[a-z0-9_]{1,63}$")
_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NOT_IDENT = re.compile(r"[^a-z0-9_]")


class ColumnType(Enum):
    """A column's type, as §8.4 maps protobuf field types (``ENUM`` is stored as its name)."""

    INT32 = "int32"
    INT64 = "int64"
    TEXT = "text"
    BOOL = "bool"
    FLOAT = "float"
    DOUBLE = "double"
    BYTES = "bytes"
    JSON = "json"
    ENUM = "enum"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a projection table; ``searchable`` columns get an index."""

    name: str
    type: ColumnType
    searchable: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    """What a state needs of its projection table: ``name`` is the snake_case actor name.

    ``key`` names the column that identifies a row within a system (the primary key with the
    system column).
    """

    name: str
    columns: tuple[Column, ...]
    key: str

    def __post_init__(self) -> None:
        check_identifier("projection table", self.name)
        seen: set[str] = set()
        for column in self.columns:
            check_identifier(f"column of projection {self.name!r}", column.name)
            if column.name in seen:
                raise RegistrationError(f"projection {self.name!r} has two columns {column.name!r}")
            if column.name == SYSTEM_COLUMN or column.name in TIMESTAMP_COLUMNS:
                raise RegistrationError(
                    f"projection {self.name!r}: column name {column.name!r} is reserved"
                )
            seen.add(column.name)
        if self.key not in seen:
            raise RegistrationError(
                f"projection {self.name!r}: key column {self.key!r} is not one of its columns"
            )

    @property
    def table(self) -> str:
        return table_name(self.name)


def snake_case(name: str) -> str:
    """Elixir's ``Macro.underscore`` as Spawn applies it, keeping only ``[a-z0-9_]`` (§8.4).

    ``"BalanceView"`` → ``"balance_view"``, ``"HTTPServer"`` → ``"http_server"``,
    ``"acct-1"`` → ``"acct_1"``; dots vanish (``Macro.underscore`` makes them ``/``).
    """
    text = _CAMEL.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", name))
    return _NOT_IDENT.sub("", text.replace("-", "_").lower())


def check_identifier(what: str, name: str) -> str:
    """``name`` if it is a safe identifier (``[a-z0-9_]``, 1-63 characters), else raise."""
    if not _IDENTIFIER.match(name):
        raise RegistrationError(
            f"invalid {what} name {name!r}: SQL names here are 1-{MAX_IDENTIFIER} characters of "
            "a-z, 0-9 and _ (snake_case of the actor, field or key)"
        )
    return name


def _bounded(name: str) -> str:
    """``name``, or a prefix of it plus a hash when it exceeds PostgreSQL's 63 characters."""
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_IDENTIFIER - 11]}_{digest}"


def table_name(projection: str) -> str:
    """The physical table of the projection whose snake_case name is ``projection``."""
    return _bounded(TABLE_PREFIX + check_identifier("projection table", projection))


def _index_name(table: str, column: str) -> str:
    return _bounded(f"idx_{table}_{column}")


def _quote(name: str) -> str:
    """A checked identifier in double quotes (both dialects); ``name`` never holds a quote."""
    if not _IDENTIFIER.match(name):
        raise RegistrationError(f"refusing to use {name!r} as an SQL identifier")
    return f'"{name}"'


# -- dialects -------------------------------------------------------------------------------------


def _sqlite_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between SQLite and PostgreSQL for projection tables."""

    name: str
    placeholder: str
    types: Mapping[ColumnType, str]
    timestamp_type: str
    now: str
    columns_query: str
    json_param: Callable[[Any], Any]
    json_is_text: bool
    read_only: tuple[str, ...]
    read_write: tuple[str, ...]
    add_column: str
    ddl_lock: str = ""
    escape_percent: bool = False
    reverse: Mapping[str, ColumnType] = field(default_factory=dict)

    def type_of(self, declared: str) -> ColumnType | None:
        """The column type a declared SQL type stands for, or None for one we did not create."""
        return self.reverse.get(declared.strip().lower())


_SQLITE_TYPES: Final = {
    ColumnType.INT32: "INTEGER",
    ColumnType.INT64: "BIGINT",
    ColumnType.TEXT: "TEXT",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.FLOAT: "REAL",
    ColumnType.DOUBLE: "DOUBLE PRECISION",
    ColumnType.BYTES: "BLOB",
    # JSON text with TEXT affinity: a plain "JSON" column would get NUMERIC affinity, and SQLite
    # would turn the text '1e400' or '12345678901234567890123' into a lossy number.
    ColumnType.JSON: "JSON_TEXT",
    ColumnType.ENUM: "TEXT",
}

#: SQLite: types with the right affinity, distinct enough to map back (§8.4's table, analogous).
SQLITE: Final = Dialect(
    name="sqlite",
    placeholder="?",
    types=_SQLITE_TYPES,
    timestamp_type="TEXT",
    now="strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    columns_query="SELECT name, type FROM pragma_table_info(?)",
    json_param=_sqlite_json,
    json_is_text=True,
    read_only=("PRAGMA query_only = ON",),
    read_write=("PRAGMA query_only = OFF",),
    add_column="ALTER TABLE {table} ADD COLUMN {column} {type}",
    reverse={v.lower(): k for k, v in _SQLITE_TYPES.items() if k is not ColumnType.ENUM},
)

#: PostgreSQL: §8.4's table as it stands.
POSTGRES_TYPES: Final = {
    ColumnType.INT32: "integer",
    ColumnType.INT64: "bigint",
    ColumnType.TEXT: "text",
    ColumnType.BOOL: "boolean",
    ColumnType.FLOAT: "real",
    ColumnType.DOUBLE: "double precision",
    ColumnType.BYTES: "bytea",
    ColumnType.JSON: "jsonb",
    ColumnType.ENUM: "text",
}


def postgres_dialect(jsonb: Callable[[Any], Any]) -> Dialect:
    """The PostgreSQL dialect; ``jsonb`` wraps a value as a jsonb parameter (psycopg's Jsonb)."""
    reverse = {v: k for k, v in POSTGRES_TYPES.items() if k is not ColumnType.ENUM}
    reverse["json"] = ColumnType.JSON
    return Dialect(
        name="postgresql",
        placeholder="%s",
        types=POSTGRES_TYPES,
        timestamp_type="timestamptz",
        now="now()",
        columns_query=(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s"
        ),
        json_param=jsonb,
        json_is_text=False,
        read_only=("SET TRANSACTION READ ONLY",),
        read_write=(),
        add_column="ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {type}",
        # CREATE TABLE IF NOT EXISTS races between processes; one lock per table serialises DDL.
        ddl_lock="SELECT pg_advisory_xact_lock(hashtext('spawn_lab_proj'), hashtext(%s))",
        escape_percent=True,
        reverse=reverse,
    )


#: ``session(doing, write)``: a connection with ``execute(sql, params)``. A write session is one
#: transaction, committed when the block ends and rolled back on error; database errors leave it
#: as :class:`StoreError` saying ``doing``.
Session = Callable[[str, bool], AbstractContextManager[Any]]


# -- view queries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Param:
    name: str


@dataclass(frozen=True, slots=True)
class ParsedView:
    """A view query split into text and ``:name`` parameters, with what the rewrite needs.

    ``pieces`` is the query after a leading ``WITH [RECURSIVE]`` (if ``with_clause``), so the
    projection's CTE can go first in the same WITH list.
    """

    pieces: tuple[str | _Param, ...]
    params: tuple[str, ...]
    with_clause: str
    has_limit: bool


_TOKEN: Final = re.compile(
    r"""
      (?P<string>'(?:[^']|'')*'?)
    | (?P<quoted>"(?:[^"]|"")*"?|`[^`]*`?)
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<cast>::)
    | (?P<param>:[A-Za-z_][A-Za-z0-9_]*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<space>\s+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@functools.lru_cache(maxsize=256)
def parse_view(query: str) -> ParsedView:
    """Find the ``:name`` parameters, an outer LIMIT/OFFSET and a leading WITH of ``query``.

    Quoted strings and identifiers, comments, PostgreSQL dollar quotes and ``::`` casts are
    skipped, so ``':x'`` or ``a::text`` are not parameters. Array slices such as ``a[1:n]`` and
    backslash escapes in ``E''`` strings are not understood.
    """
    if not isinstance(query, str) or not query.strip():
        raise RegistrationError(f"a view needs an SQL query, got {query!r}")
    text = query.strip().rstrip(";").rstrip()
    pieces: list[str | _Param] = []
    buffer: list[str] = []
    names: list[str] = []
    depth = 0
    has_limit = False
    words_seen = 0
    with_clause = ""
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        token = match.group()
        if kind == "word":
            upper = token.upper()
            if words_seen == 0 and upper == "WITH":
                with_clause, buffer = "WITH", []  # drop leading comments with the keyword
                words_seen += 1
                continue
            if words_seen == 1 and with_clause and upper == "RECURSIVE":
                with_clause = "WITH RECURSIVE"
                words_seen += 1
                continue
            words_seen += 1
            if depth == 0 and upper in ("LIMIT", "OFFSET"):
                has_limit = True
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "param":
            if buffer:
                pieces.append("".join(buffer))
                buffer = []
            name = token[1:]
            pieces.append(_Param(name))
            if name not in names:
                names.append(name)
            continue
        buffer.append(token)
    if buffer:
        pieces.append("".join(buffer))
    return ParsedView(tuple(pieces), tuple(names), with_clause, has_limit)


# -- the tables ----------------------------------------------------------------------------------


class ProjectionTables:
    """The projection tables of one database, reached through a store's ``session``.

    Thread-safe: the column cache is behind a lock, and every statement runs in a session the
    store serialises as it needs. ``label`` names the database in error messages.
    """

    def __init__(self, dialect: Dialect, session: Session, *, label: str = "") -> None:
        self.dialect = dialect
        self.label = label or dialect.name
        self._session = session
        self._lock = threading.Lock()
        self._columns: dict[str, dict[str, ColumnType | None]] = {}
        self._upserts: dict[tuple[str, tuple[str, ...]], str] = {}

    @classmethod
    def in_memory(cls, label: str = "in-memory SQLite") -> ProjectionTables:
        """Tables in a private in-memory SQLite database (the memory store's, and the default)."""
        return cls(SQLITE, InMemorySQLite().session, label=label)

    # -- schema ---------------------------------------------------------------------------------

    def ensure(self, spec: TableSpec) -> dict[str, ColumnType | None]:
        """Create ``spec``'s table, add the columns and indexes it lacks; return its columns.

        Always reads the table's current columns from the database (this runs on activation
        and after a failed upsert), so a column dropped behind our back comes back.
        """
        d = self.dialect
        table = spec.table
        with self._session(f"create or update projection table {table!r}", True) as conn:
            if d.ddl_lock:
                conn.execute(d.ddl_lock, (table,))
            existing = self._read_columns(conn, table)
            if not existing:
                conn.execute(self._create_sql(spec))
                existing = {c.name: c.type for c in spec.columns}
                existing[SYSTEM_COLUMN] = ColumnType.TEXT
                existing.update(dict.fromkeys(TIMESTAMP_COLUMNS))
            else:
                if spec.key not in existing:
                    raise StoreError(
                        f"{self.label}: projection table {table!r} has no column {spec.key!r}, "
                        "the key of the current state; a projection's key field cannot change "
                        "(drop the table to rebuild it)"
                    )
                wanted = [(c.name, d.types[c.type]) for c in spec.columns]
                wanted += [(name, d.timestamp_type) for name in TIMESTAMP_COLUMNS]
                for name, sql_type in wanted:
                    if name not in existing:
                        conn.execute(
                            d.add_column.format(
                                table=_quote(table), column=_quote(name), type=sql_type
                            )
                        )
                        existing[name] = d.type_of(sql_type)
            for column in spec.columns:
                if column.searchable:
                    conn.execute(
                        f"CREATE INDEX IF NOT EXISTS {_quote(_index_name(table, column.name))} "
                        f"ON {_quote(table)} ({_quote(SYSTEM_COLUMN)}, {_quote(column.name)})"
                    )
        with self._lock:
            self._columns[table] = existing
        return existing

    def _create_sql(self, spec: TableSpec) -> str:
        d = self.dialect
        lines = [f"{_quote(SYSTEM_COLUMN)} {d.types[ColumnType.TEXT]} NOT NULL"]
        for column in spec.columns:
            null = " NOT NULL" if column.name == spec.key else ""
            lines.append(f"{_quote(column.name)} {d.types[column.type]}{null}")
        for name in TIMESTAMP_COLUMNS:
            lines.append(f"{_quote(name)} {d.timestamp_type} NOT NULL DEFAULT ({d.now})")
        lines.append(f"PRIMARY KEY ({_quote(SYSTEM_COLUMN)}, {_quote(spec.key)})")
        body = ",\n  ".join(lines)
        return f"CREATE TABLE IF NOT EXISTS {_quote(spec.table)} (\n  {body}\n)"

    def _read_columns(self, conn: Any, table: str) -> dict[str, ColumnType | None]:
        rows = conn.execute(self.dialect.columns_query, (table,)).fetchall()
        return {str(name): self.dialect.type_of(str(declared)) for name, declared in rows}

    def columns(self, projection: str) -> dict[str, ColumnType | None]:
        """The columns of a projection's table as the database has them ({} if it has none)."""
        table = table_name(projection)
        with self._session(f"read the columns of {table!r}", False) as conn:
            found = self._read_columns(conn, table)
        if found:
            with self._lock:
                self._columns[table] = found
        return found

    def _known(self, table: str) -> dict[str, ColumnType | None] | None:
        with self._lock:
            return self._columns.get(table)

    # -- rows -----------------------------------------------------------------------------------

    def upsert(
        self, spec: TableSpec, system: str, row: Mapping[str, Any], *, clear_missing: bool = False
    ) -> None:
        """Insert ``row`` or, on a key conflict, update every other column (§8.4).

        Creates the table or adds the columns ``spec`` needs first. With ``clear_missing``,
        columns the table has but ``row`` lacks are set to NULL (a JSON state that dropped a
        key); otherwise they keep their values (a protobuf field removed from the type). After a
        failure the schema is read again and the upsert retried once, so a column dropped or a
        table truncated behind our back heals itself.
        """
        try:
            self._upsert(spec, system, row, clear_missing)
        except StoreError:
            with self._lock:
                self._columns.pop(spec.table, None)
            self._upsert(spec, system, row, clear_missing)

    def _upsert(
        self, spec: TableSpec, system: str, row: Mapping[str, Any], clear_missing: bool
    ) -> None:
        table = spec.table
        known = self._known(table)
        if known is None or any(c.name not in known for c in spec.columns):
            known = self.ensure(spec)
        names = [c.name for c in spec.columns]
        if clear_missing:
            present = set(names)
            names += sorted(
                n
                for n in known
                if n not in present and n != SYSTEM_COLUMN and n not in TIMESTAMP_COLUMNS
            )
        sql = self._upsert_sql(table, spec.key, tuple(names))
        params = [system, *(self._param(table, n, known.get(n), row.get(n)) for n in names)]
        with self._session(f"upsert into projection table {table!r}", True) as conn:
            conn.execute(sql, params)

    def _upsert_sql(self, table: str, key: str, names: tuple[str, ...]) -> str:
        cached = self._upserts.get((table, names))
        if cached is not None:
            return cached
        d = self.dialect
        columns = ", ".join(_quote(n) for n in (SYSTEM_COLUMN, *names, *TIMESTAMP_COLUMNS))
        values = ", ".join([d.placeholder] * (len(names) + 1) + [d.now, d.now])
        updates = [f"{_quote(n)} = excluded.{_quote(n)}" for n in names if n != key]
        updates.append(f'"updated_at" = {d.now}')
        sql = (
            f"INSERT INTO {_quote(table)} ({columns}) VALUES ({values}) "
            f"ON CONFLICT ({_quote(SYSTEM_COLUMN)}, {_quote(key)}) DO UPDATE SET "
            + ", ".join(updates)
        )
        self._upserts[(table, names)] = sql
        return sql

    def _param(self, table: str, column: str, kind: ColumnType | None, value: Any) -> Any:
        """A row value as the parameter its column needs (JSON wrapped, text for text columns)."""
        if value is None:
            return None
        try:
            if kind is ColumnType.JSON:
                return self.dialect.json_param(value)
            if kind in (ColumnType.TEXT, ColumnType.ENUM) and not isinstance(value, str):
                return _sqlite_json(value)
        except (TypeError, ValueError) as exc:
            raise PayloadError(
                f"column {column!r} of projection table {table!r}: {value!r} is not JSON: {exc}"
            ) from exc
        if kind is ColumnType.BOOL and isinstance(value, int):
            return bool(value)
        return value

    def rows(self, projection: str, system: str) -> list[dict[str, Any]]:
        """Every row of ``system`` in a projection's table, without the system column."""
        table = table_name(projection)
        known = self._known(table) or self.columns(projection)
        if not known:
            return []
        names = [n for n in known if n != SYSTEM_COLUMN]
        sql = (
            f"SELECT {', '.join(_quote(n) for n in names)} FROM {_quote(table)} "
            f"WHERE {_quote(SYSTEM_COLUMN)} = {self.dialect.placeholder}"
        )
        with self._session(f"read projection table {table!r}", False) as conn:
            found = conn.execute(sql, (system,)).fetchall()
        return [self._decode(names, row, known) for row in found]

    def view(
        self,
        projection: str,
        system: str,
        query: str,
        params: Mapping[str, Any],
        *,
        page: int = 1,
        page_size: int = 10,
    ) -> list[dict[str, Any]]:
        """Run a view query over ``system``'s rows of a projection (§8.5); rows as dicts.

        Every ``:name`` of the query must be in ``params`` (extra entries are ignored), else
        :class:`PayloadError` "Required parameter(s): ...". ``LIMIT``/``OFFSET`` for the page
        are appended unless the query has its own at the outer level.
        """
        parsed = parse_view(query)
        missing = [n for n in parsed.params if n not in params]
        if missing:
            raise PayloadError(f"Required parameter(s): {', '.join(missing)}")
        table = table_name(projection)
        cached = self._known(table)
        if cached is not None:
            try:
                return self._run_view(projection, system, cached, parsed, params, page, page_size)
            except StoreError:
                pass  # maybe the table changed under the cache: read it again, once
        known = self.columns(projection)
        if not known:
            raise StoreError(f"{self.label}: projection table {table!r} does not exist yet")
        return self._run_view(projection, system, known, parsed, params, page, page_size)

    def _run_view(
        self,
        projection: str,
        system: str,
        known: Mapping[str, ColumnType | None],
        parsed: ParsedView,
        params: Mapping[str, Any],
        page: int,
        page_size: int,
    ) -> list[dict[str, Any]]:
        table = table_name(projection)
        sql, values = self._view_sql(
            projection, table, system, known, parsed, params, page, page_size
        )
        d = self.dialect
        doing = f"run a read-only view over projection table {table!r}"
        with self._session(doing, False) as conn:
            for statement in d.read_only:
                conn.execute(statement)
            try:
                cursor = conn.execute(sql, values)
                names = [str(c[0]) for c in cursor.description or ()]
                found = cursor.fetchall()
            finally:
                for statement in d.read_write:
                    conn.execute(statement)
        return [self._decode(names, row, known) for row in found]

    def _view_sql(
        self,
        projection: str,
        table: str,
        system: str,
        known: Mapping[str, ColumnType | None],
        parsed: ParsedView,
        params: Mapping[str, Any],
        page: int,
        page_size: int,
    ) -> tuple[str, list[Any]]:
        d = self.dialect
        visible = ", ".join(_quote(n) for n in known if n != SYSTEM_COLUMN)
        cte = (
            f"{_quote(projection)} AS (SELECT {visible} FROM {_quote(table)} "
            f"WHERE {_quote(SYSTEM_COLUMN)} = {d.placeholder})"
        )
        parts = [f"{parsed.with_clause or 'WITH'} {cte}{',' if parsed.with_clause else ''} "]
        values: list[Any] = [system]
        for piece in parsed.pieces:
            if isinstance(piece, _Param):
                parts.append(d.placeholder)
                values.append(_view_param(params[piece.name]))
            else:
                parts.append(piece.replace("%", "%%") if d.escape_percent else piece)
        if not parsed.has_limit:
            parts.append(f" LIMIT {d.placeholder} OFFSET {d.placeholder}")
            values += [page_size, (page - 1) * page_size]
        return "".join(parts), values

    def _decode(
        self, names: Sequence[str], row: Sequence[Any], known: Mapping[str, ColumnType | None]
    ) -> dict[str, Any]:
        """A database row as plain values: JSON parsed, booleans as bool, times as ISO-8601."""
        out: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            kind = known.get(name)
            if value is None:
                out[name] = None
            elif kind is ColumnType.JSON and self.dialect.json_is_text and isinstance(value, str):
                out[name] = json.loads(value)
            elif kind is ColumnType.BOOL and isinstance(value, int):
                out[name] = bool(value)
            else:
                out[name] = _plain(value)
        return out


def _view_param(value: Any) -> Any:
    """A query parameter as both drivers take it: nested values as JSON text."""
    if isinstance(value, dict | list | tuple):
        return _sqlite_json(value)
    return value


def _plain(value: Any) -> Any:
    """Driver types a caller should not have to know: datetimes, decimals, memoryviews."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


class InMemorySQLite:
    """One private in-memory SQLite database behind a lock: the memory store's projection tables.

    Views then run the same SQL as on a SQLite file, so a notebook on ``memory://`` sees the
    same results as on disk.
    """

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def session(self, doing: str, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreError(f"in-memory projection tables are closed (cannot {doing})")
            conn = self._conn
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    if write:
                        conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"in-memory projection tables: cannot {doing}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
