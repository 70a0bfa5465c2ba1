"""The PostgreSQL store: the same revision history as SQLite, in a shared server's table.

Durability: every save is one transaction with ``synchronous_commit = on`` (forced per
connection, whatever the server's default), so it is in the server's WAL when ``save`` returns.

Concurrency: the optimistic revision check must see every row committed before it. A
``SELECT ... FOR UPDATE`` on the latest row cannot give that (there is no row to lock for a new
actor, and a waiter re-reads the row it locked, not a newer one), so each save first takes a
transaction-scoped advisory lock per actor, ``pg_advisory_xact_lock(hashtext(system),
hashtext(actor))``, in a fixed order, and only then reads the latest revisions. Writers of
different actors never wait for each other (hash collisions only make two actors share a
queue); the primary key backs this up for writers that skip the lock.

Connections: a small lock-guarded set, one per concurrent caller, reused; a broken one is dropped
and replaced on next use. The password never appears in ``url``, reprs or error messages.

Projection tables (:mod:`spawn_lab.stores.tables`) are real tables of the same database, reached
through the same connections, each call one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from spawn_lab.core.errors import ConflictError, CorruptStateError, StoreError
from spawn_lab.stores.base import RevisionInfo, Snapshot, Store
from spawn_lab.stores.tables import ProjectionTables, postgres_dialect

__all__ = ("PostgresStore", "mask_url")

_TABLE: Final = "spawn_lab_snapshots"
_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    system    text             NOT NULL,
    actor     text             NOT NULL,
    revision  bigint           NOT NULL,
    status    text             NOT NULL,
    parent    text             NOT NULL DEFAULT '',
    type_url  text             NOT NULL,
    data      bytea            NOT NULL,
    tags      jsonb            NOT NULL DEFAULT '{{}}',
    timestamp double precision NOT NULL,
    PRIMARY KEY (system, actor, revision)
)
"""
#: Serialises schema creation between processes (CREATE TABLE IF NOT EXISTS can race).
_SCHEMA_LOCK: Final = 0x53504157_4E4C4142
_COLUMNS: Final = "system, actor, revision, status, parent, type_url, data, tags, timestamp"
_SELECT: Final = f"SELECT {_COLUMNS} FROM {_TABLE} WHERE system = %s AND actor = %s"
_LOCK_ACTORS: Final = (
    "SELECT pg_advisory_xact_lock(k1, k2) FROM (SELECT DISTINCT hashtext(s) AS k1, "
    "hashtext(a) AS k2 FROM unnest(%s::text[], %s::text[]) AS u(s, a) ORDER BY 1, 2) AS keys"
)
_LATEST_REVISIONS: Final = (
    f"SELECT u.s, u.a, (SELECT revision FROM {_TABLE} t WHERE t.system = u.s AND t.actor = u.a "
    "ORDER BY revision DESC LIMIT 1) FROM unnest(%s::text[], %s::text[]) AS u(s, a)"
)
_INSERT: Final = f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
_INSERT_IF_NEWER: Final = (
    f"INSERT INTO {_TABLE} ({_COLUMNS}) SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s "
    f"WHERE NOT EXISTS (SELECT 1 FROM {_TABLE} WHERE system = %s AND actor = %s "
    "AND revision >= %s)"
)
_LATEST_REVISION: Final = f"SELECT max(revision) FROM {_TABLE} WHERE system = %s AND actor = %s"
_RESTATUS: Final = (
    f"UPDATE {_TABLE} SET status = %s, tags = %s WHERE system = %s AND actor = %s AND revision = %s"
)


def mask_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hosts = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{hosts}"
    query = parts.query
    if "password" in query:
        query = urlencode(
            [(k, "***" if k == "password" else v) for k, v in parse_qsl(query)], safe="*"
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _secrets_of(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if k == "password" and v]
    return found


class PostgresStore(Store):
    """Snapshots in the table ``spawn_lab_snapshots`` of a PostgreSQL database."""

    def __init__(self, url: str, *, connect_timeout_s: int = 10, max_idle: int = 8) -> None:
        try:
            import psycopg
        except ImportError as exc:  # an optional extra
            raise StoreError(
                "the PostgreSQL store needs psycopg: pip install 'spawn-lab[postgres]'"
            ) from exc
        from psycopg.types.json import Jsonb

        self._psycopg = psycopg
        self._jsonb = Jsonb
        self._dsn = url
        self.url = mask_url(url)
        self._secrets = _secrets_of(url)
        self._timeout = connect_timeout_s
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._closed = False
        self._tables: ProjectionTables | None = None
        with self._conn(None, "create the table") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute(_SCHEMA)

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._closed:
            raise StoreError(f"PostgreSQL store {self.url} is closed")
        conn = self._psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        conn.execute("SET synchronous_commit TO on")
        return conn

    @contextmanager
    def _conn(self, actor: str | None, doing: str) -> Iterator[Any]:
        """A connection for one call; psycopg errors become StoreErrors naming ``actor``."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            yield conn
        except self._psycopg.Error as exc:
            if conn is not None and (conn.closed or conn.broken):
                conn = None
            raise self._error(exc, doing, actor) from exc
        finally:
            if conn is not None:
                with self._lock:
                    keep = not self._closed and len(self._idle) < self._max_idle
                    if keep:
                        self._idle.append(conn)
                if not keep:
                    conn.close()

    def _error(self, exc: Exception, doing: str, actor: str | None) -> StoreError:
        errors = self._psycopg.errors
        reason = str(exc).strip() or type(exc).__name__
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        subject = f" actor {actor!r}" if actor else ""
        message = f"PostgreSQL store {self.url}: cannot {doing}{subject}: {reason}"
        if isinstance(exc, errors.UniqueViolation) and actor:
            return ConflictError(f"{message} (another writer saved that revision first)", actor)
        if isinstance(exc, errors.DataCorrupted | errors.IndexCorrupted) and actor:
            return CorruptStateError(message, actor=actor)
        return StoreError(message, actor=actor)

    # -- the contract -----------------------------------------------------------------------------

    def save(self, snapshots: Sequence[Snapshot]) -> None:
        if not snapshots:
            return
        with self._conn(snapshots[0].actor, "save") as conn, conn.transaction():
            if len(snapshots) == 1:
                self._save_one(conn, snapshots[0])
            else:
                self._save_many(conn, snapshots)

    def _save_one(self, conn: Any, snap: Snapshot) -> None:
        """One row in four round trips: lock, insert-if-newer, (rarely) look why not, commit."""
        key = (snap.system, snap.actor)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", key)
        cur = conn.execute(_INSERT_IF_NEWER, (*self._row(snap), *key, snap.revision))
        if cur.rowcount != 1:
            current = conn.execute(_LATEST_REVISION, key).fetchone()[0]
            self._restatus_or_conflict(conn, snap, current)

    def _save_many(self, conn: Any, snapshots: Sequence[Snapshot]) -> None:
        """Lock every actor, read their latest revisions, then insert in one pipelined batch."""
        keys = sorted({(s.system, s.actor) for s in snapshots})
        systems = [k[0] for k in keys]
        actors = [k[1] for k in keys]
        conn.execute(_LOCK_ACTORS, (systems, actors))
        latest: dict[tuple[str, str], int | None] = {
            (s, a): rev
            for s, a, rev in conn.execute(_LATEST_REVISIONS, (systems, actors)).fetchall()
        }
        staged: dict[tuple[str, str, int], list[Any]] = {}  # rows to insert, in order
        for snap in snapshots:
            key = (snap.system, snap.actor)
            current = latest[key]
            if current is None or snap.revision > current:
                staged[(*key, snap.revision)] = self._row(snap)
                latest[key] = snap.revision
                continue
            row = staged.get((*key, snap.revision))
            if row is None:
                self._restatus_or_conflict(conn, snap, current)
            elif snap.revision == current and row[6] == bytes(snap.data):
                row[3], row[7] = snap.status, self._jsonb(dict(snap.tags))  # repeated: restatus
            else:
                raise _conflict(snap, current)
        if staged:
            with conn.cursor() as cur:
                cur.executemany(_INSERT, list(staged.values()))

    def _restatus_or_conflict(self, conn: Any, snap: Snapshot, current: int) -> None:
        """A row not above the stored latest: a status update if it repeats it, else conflict."""
        if snap.revision == current:
            stored = conn.execute(
                f"SELECT data FROM {_TABLE} WHERE system = %s AND actor = %s AND revision = %s",
                (snap.system, snap.actor, snap.revision),
            ).fetchone()
            if stored is not None and bytes(stored[0]) == bytes(snap.data):
                tags = self._jsonb(dict(snap.tags))
                conn.execute(_RESTATUS, (snap.status, tags, snap.system, snap.actor, current))
                return
        raise _conflict(snap, current)

    def _row(self, snap: Snapshot) -> list[Any]:
        return [
            snap.system,
            snap.actor,
            snap.revision,
            snap.status,
            snap.parent,
            snap.type_url,
            bytes(snap.data),
            self._jsonb(dict(snap.tags)),
            snap.timestamp,
        ]

    def load(self, system: str, actor: str, revision: int = 0) -> Snapshot | None:
        with self._conn(actor, "load") as conn:
            if revision <= 0:
                query = f"{_SELECT} ORDER BY revision DESC LIMIT 1"
                row = conn.execute(query, (system, actor)).fetchone()
            else:
                row = conn.execute(
                    f"{_SELECT} AND revision = %s", (system, actor, revision)
                ).fetchone()
        return None if row is None else _snapshot(row)

    def load_at(self, system: str, actor: str, when: float) -> Snapshot | None:
        query = f"{_SELECT} AND timestamp <= %s ORDER BY revision DESC LIMIT 1"
        with self._conn(actor, "load") as conn:
            row = conn.execute(query, (system, actor, when)).fetchone()
        return None if row is None else _snapshot(row)

    def revisions(self, system: str, actor: str) -> list[RevisionInfo]:
        with self._conn(actor, "list revisions of") as conn:
            rows = conn.execute(
                f"SELECT revision, status, timestamp, type_url FROM {_TABLE} "
                "WHERE system = %s AND actor = %s ORDER BY revision",
                (system, actor),
            ).fetchall()
        return [RevisionInfo(*row) for row in rows]

    def actors(self, system: str) -> list[str]:
        with self._conn(None, f"list the actors of system {system!r}") as conn:
            rows = conn.execute(
                f"SELECT DISTINCT actor FROM {_TABLE} WHERE system = %s", (system,)
            ).fetchall()
        return sorted(row[0] for row in rows)  # code-point order, whatever the collation

    def fork(self, system: str, new_system: str, at: float | None = None) -> int:
        doing = f"fork system {system!r} into {new_system!r}"
        with self._conn(None, doing) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), 0)", (new_system,))
            taken = conn.execute(
                f"SELECT 1 FROM {_TABLE} WHERE system = %s LIMIT 1", (new_system,)
            ).fetchone()
            if taken is not None:
                raise ConflictError(
                    f"cannot fork system {system!r} into {new_system!r}: {new_system!r} already "
                    "has stored state, and forking never rewrites history"
                )
            conn.execute(
                f"INSERT INTO {_TABLE} ({_COLUMNS}) SELECT %s, actor, revision, status, parent, "
                f"type_url, data, tags, timestamp FROM {_TABLE} "
                "WHERE system = %s AND timestamp <= %s",
                (new_system, system, float("inf") if at is None else at),
            )
            row = conn.execute(
                f"SELECT count(DISTINCT actor) FROM {_TABLE} WHERE system = %s", (new_system,)
            ).fetchone()
        return int(row[0])

    def projection_tables(self) -> ProjectionTables:
        with self._lock:
            if self._tables is None:
                dialect = postgres_dialect(self._jsonb)
                label = f"PostgreSQL store {self.url}"
                self._tables = ProjectionTables(dialect, self._projection_session, label=label)
            return self._tables

    @contextmanager
    def _projection_session(self, doing: str, write: bool) -> Iterator[Any]:
        """One transaction on a pooled connection, for reads (views) as for writes."""
        with self._conn(None, doing) as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __repr__(self) -> str:
        return f"<PostgresStore {self.url}{' closed' if self._closed else ''}>"


def _conflict(snap: Snapshot, current: int) -> ConflictError:
    return ConflictError(
        f"actor {snap.actor!r} already has revision {current} (tried to save {snap.revision})",
        actor=snap.actor,
    )


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    """A row as a Snapshot; a row of the wrong shape is that actor's CorruptStateError."""
    system, actor, revision, status, parent, type_url, data, tags, timestamp = row
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise CorruptStateError(
            f"stored row of actor {actor!r} (revision {revision}) is malformed: tags must be a "
            f"JSON object of strings, not {tags!r}",
            actor=actor,
        )
    return Snapshot(system, actor, revision, type_url, bytes(data), tags, status, parent, timestamp)
