"""The SQLite store, the notebook default: one file holding every actor's full revision history.

Durability: WAL journal with ``synchronous=FULL``, so a commit is on disk (the WAL fsynced) when
``save`` returns, and a killed process loses nothing it was told was saved.

Concurrency: in this process all writes share one connection behind a lock (measured with 4
threads: about 15 % more saves per second than one connection per thread, whose writers wait in
SQLite's sleeping busy handler instead of a lock queue); reads use a small pool of connections,
so an activation never waits for another actor's fsync. Other processes are kept honest by the
optimistic revision check, done inside a ``BEGIN IMMEDIATE`` transaction (which holds the file's
write lock from the check to the commit), with a busy timeout so writers queue instead of
failing.

A connection that reported an error is closed and replaced on next use, so a disk that comes back
(space freed, file made writable again) is picked up without reopening the store.

Projection tables (:mod:`spawn_lab.stores.tables`) live in the same file and use the same
connections: upserts go through the writer, views through the reader pool.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final
from urllib.parse import quote, urlsplit

from spawn_lab.core.errors import ConflictError, CorruptStateError, StoreError
from spawn_lab.stores.base import RevisionInfo, Snapshot, Store
from spawn_lab.stores.tables import SQLITE, ProjectionTables

__all__ = ("SQLiteStore",)

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spawn_lab_snapshots (
    system    TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    revision  INTEGER NOT NULL,
    status    TEXT    NOT NULL,
    parent    TEXT    NOT NULL DEFAULT '',
    type_url  TEXT    NOT NULL,
    data      BLOB    NOT NULL,
    tags      TEXT    NOT NULL DEFAULT '{}',
    timestamp REAL    NOT NULL,
    PRIMARY KEY (system, actor, revision)
)
"""
_COLUMNS: Final = "system, actor, revision, status, parent, type_url, data, tags, timestamp"
_LATEST: Final = (
    f"SELECT {_COLUMNS} FROM spawn_lab_snapshots WHERE system = ? AND actor = ? "
    "ORDER BY revision DESC LIMIT 1"
)
_EXACT: Final = (
    f"SELECT {_COLUMNS} FROM spawn_lab_snapshots WHERE system = ? AND actor = ? AND revision = ?"
)
_AT: Final = (
    f"SELECT {_COLUMNS} FROM spawn_lab_snapshots WHERE system = ? AND actor = ? "
    "AND timestamp <= ? ORDER BY revision DESC LIMIT 1"
)
_LATEST_REVISION: Final = (
    "SELECT revision FROM spawn_lab_snapshots WHERE system = ? AND actor = ? "
    "ORDER BY revision DESC LIMIT 1"
)
_DATA_AT: Final = (
    "SELECT data FROM spawn_lab_snapshots WHERE system = ? AND actor = ? AND revision = ?"
)
_INSERT: Final = f"INSERT INTO spawn_lab_snapshots ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_RESTATUS: Final = (
    "UPDATE spawn_lab_snapshots SET status = ?, tags = ? "
    "WHERE system = ? AND actor = ? AND revision = ?"
)

#: What a primary SQLite result code means to someone whose state was not saved.
_HINTS: Final = {
    sqlite3.SQLITE_READONLY: "the database is read-only (its file, directory or filesystem)",
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_IOERR: "disk I/O error (a failing, read-only or vanished disk?)",
    sqlite3.SQLITE_CANTOPEN: "cannot open the database file (a missing or read-only directory?)",
    sqlite3.SQLITE_BUSY: "another process held the database lock for longer than busy_timeout",
    sqlite3.SQLITE_LOCKED: "the database is locked",
    sqlite3.SQLITE_CORRUPT: "the database file is corrupt",
    sqlite3.SQLITE_NOTADB: "the file is not a SQLite database",
    sqlite3.SQLITE_PERM: "permission denied",
}
_CORRUPT: Final = frozenset((sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB))


def _target(url: str) -> tuple[str, str, bool]:
    """``(display path, what sqlite3.connect opens, whether it is a URI)`` for a store URL."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise StoreError(
            f"bad SQLite store URL {url!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db"
        )
    path = parts.path[1:]
    if not path or path == ":memory:":
        raise StoreError(f"SQLite store URL {url!r} names no file; for no file use memory://")
    if parts.query:  # SQLite URI parameters, e.g. ?mode=ro
        return path, f"file:{quote(path)}?{parts.query}", True
    return path, path, False


class SQLiteStore(Store):
    """Snapshots in the table ``spawn_lab_snapshots`` of one SQLite file."""

    def __init__(self, url: str, *, busy_timeout_s: float = 10.0) -> None:
        self.url = url
        self.path, self._target, self._uri = _target(url)
        self._busy_ms = int(busy_timeout_s * 1000)
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        self._closed = False
        self._tables: ProjectionTables | None = None
        with self._write_lock:
            self._prepare(self._writer_conn())

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"SQLite store {self.path!r} is closed")
        conn = sqlite3.connect(
            self._target,
            uri=self._uri,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # used by one thread at a time, under our locks
            timeout=self._busy_ms / 1000,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL and create the table, unless the file is read-only and already set up."""
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store {self.path!r} has schema version {version}, newer than this "
                    f"spawn_lab understands ({SCHEMA_VERSION}); upgrade spawn_lab"
                )
            if self._read_only(conn):
                return
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"SQLite store {self.path!r} cannot use WAL mode (got {mode!r}); is it on a "
                    "network filesystem?"
                )
            conn.execute(_SCHEMA)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._drop_writer()
            raise self._error(exc, "open the store", None) from exc

    def _read_only(self, conn: sqlite3.Connection) -> bool:
        """True when this connection cannot write but the table exists, so reads can go on."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_READONLY:
                raise
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'spawn_lab_snapshots'"
            ).fetchone()
            if found is None:
                raise
            return True
        conn.execute("ROLLBACK")
        return False

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            try:
                self._writer = self._connect()
            except sqlite3.Error as exc:
                raise self._error(exc, "open the store", None) from exc
        return self._writer

    def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        if conn is not None:
            _close_quietly(conn)

    @contextmanager
    def _reader(self, actor: str | None, doing: str) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._readers.pop() if self._readers else None
        try:
            if conn is None:
                conn = self._connect()
            yield conn
        except sqlite3.Error as exc:
            if conn is not None:
                _close_quietly(conn)
                conn = None
            raise self._error(exc, doing, actor) from exc
        finally:
            if conn is not None:
                with self._pool_lock:
                    if self._closed:
                        conn.close()
                    else:
                        self._readers.append(conn)

    @contextmanager
    def _transaction(self, actor: str | None, doing: str) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction on the writer; rolled back on any exception."""
        with self._write_lock:
            conn = self._writer_conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._drop_writer()
                raise self._error(exc, doing, actor) from exc

    def _error(self, exc: sqlite3.Error, doing: str, actor: str | None) -> StoreError:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        hint = _HINTS.get(primary, "") if primary is not None else ""
        reason = f"{hint} ({exc})" if hint else str(exc)
        subject = f" actor {actor!r}" if actor else ""
        message = f"SQLite store {self.path!r}: cannot {doing}{subject}: {reason}"
        if primary in _CORRUPT and actor:
            return CorruptStateError(message, actor=actor)
        return StoreError(message, actor=actor)

    # -- the contract -----------------------------------------------------------------------------

    def save(self, snapshots: Sequence[Snapshot]) -> None:
        if not snapshots:
            return
        first = snapshots[0].actor
        with self._transaction(first, "save") as conn:
            latest: dict[tuple[str, str], int | None] = {}
            for snap in snapshots:
                key = (snap.system, snap.actor)
                if key not in latest:
                    row = conn.execute(_LATEST_REVISION, key).fetchone()
                    latest[key] = None if row is None else row[0]
                current = latest[key]
                tags = _tags_json(snap)
                if current is not None and snap.revision <= current:
                    if snap.revision == current:
                        stored = conn.execute(_DATA_AT, (*key, current)).fetchone()
                        if stored is not None and bytes(stored[0]) == bytes(snap.data):
                            conn.execute(_RESTATUS, (snap.status, tags, *key, current))
                            continue
                    raise ConflictError(
                        f"actor {snap.actor!r} already has revision {current} "
                        f"(tried to save {snap.revision})",
                        actor=snap.actor,
                    )
                conn.execute(
                    _INSERT,
                    (
                        snap.system,
                        snap.actor,
                        snap.revision,
                        snap.status,
                        snap.parent,
                        snap.type_url,
                        bytes(snap.data),
                        tags,
                        snap.timestamp,
                    ),
                )
                latest[key] = snap.revision

    def load(self, system: str, actor: str, revision: int = 0) -> Snapshot | None:
        with self._reader(actor, "load") as conn:
            if revision <= 0:
                row = conn.execute(_LATEST, (system, actor)).fetchone()
            else:
                row = conn.execute(_EXACT, (system, actor, revision)).fetchone()
        return None if row is None else _snapshot(row)

    def load_at(self, system: str, actor: str, when: float) -> Snapshot | None:
        with self._reader(actor, "load") as conn:
            row = conn.execute(_AT, (system, actor, when)).fetchone()
        return None if row is None else _snapshot(row)

    def revisions(self, system: str, actor: str) -> list[RevisionInfo]:
        with self._reader(actor, "list revisions of") as conn:
            rows = conn.execute(
                "SELECT revision, status, timestamp, type_url FROM spawn_lab_snapshots "
                "WHERE system = ? AND actor = ? ORDER BY revision",
                (system, actor),
            ).fetchall()
        return [RevisionInfo(*row) for row in rows]

    def actors(self, system: str) -> list[str]:
        with self._reader(None, f"list the actors of system {system!r}") as conn:
            rows = conn.execute(
                "SELECT DISTINCT actor FROM spawn_lab_snapshots WHERE system = ?", (system,)
            ).fetchall()
        return sorted(row[0] for row in rows)

    def fork(self, system: str, new_system: str, at: float | None = None) -> int:
        doing = f"fork system {system!r} into {new_system!r}"
        with self._transaction(None, doing) as conn:
            taken = conn.execute(
                "SELECT 1 FROM spawn_lab_snapshots WHERE system = ? LIMIT 1", (new_system,)
            ).fetchone()
            if taken is not None:
                raise ConflictError(
                    f"cannot fork system {system!r} into {new_system!r}: {new_system!r} already "
                    "has stored state, and forking never rewrites history"
                )
            until = float("inf") if at is None else at
            conn.execute(
                f"INSERT INTO spawn_lab_snapshots ({_COLUMNS}) "
                "SELECT ?, actor, revision, status, parent, type_url, data, tags, timestamp "
                "FROM spawn_lab_snapshots WHERE system = ? AND timestamp <= ?",
                (new_system, system, until),
            )
            copied: int = conn.execute(
                "SELECT COUNT(DISTINCT actor) FROM spawn_lab_snapshots WHERE system = ?",
                (new_system,),
            ).fetchone()[0]
        return copied

    def projection_tables(self) -> ProjectionTables:
        with self._pool_lock:
            if self._tables is None:
                label = f"SQLite store {self.path!r}"
                self._tables = ProjectionTables(SQLITE, self._projection_session, label=label)
            return self._tables

    @contextmanager
    def _projection_session(self, doing: str, write: bool) -> Iterator[sqlite3.Connection]:
        """Writes in a ``BEGIN IMMEDIATE`` transaction on the writer; reads on a pooled reader."""
        if write:
            with self._transaction(None, doing) as conn:
                yield conn
        else:
            with self._reader(None, doing) as conn:
                yield conn

    def close(self) -> None:
        with self._write_lock, self._pool_lock:
            self._closed = True
            readers, self._readers = self._readers, []
            self._drop_writer()
        for conn in readers:
            _close_quietly(conn)

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}{' closed' if self._closed else ''}>"


def _tags_json(snap: Snapshot) -> str:
    return json.dumps(dict(snap.tags), separators=(",", ":"), sort_keys=True)


def _snapshot(row: tuple[Any, ...]) -> Snapshot:
    """A row as a Snapshot; a row of the wrong shape is that actor's CorruptStateError."""
    system, actor, revision, status, parent, type_url, data, tags, timestamp = row
    try:
        parsed = json.loads(tags)
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ValueError(f"tags must be a JSON object of strings, not {tags!r}")
        if not isinstance(data, bytes):
            raise ValueError(f"data must be a BLOB, not {type(data).__name__}")
        return Snapshot(
            system,
            actor,
            int(revision),
            str(type_url),
            data,
            parsed,
            str(status),
            str(parent),
            float(timestamp),
        )
    except (TypeError, ValueError) as exc:
        raise CorruptStateError(
            f"stored row of actor {actor!r} (revision {revision!r}) is malformed: {exc}",
            actor=str(actor),
        ) from exc


def _close_quietly(conn: sqlite3.Connection) -> None:
    with suppress(sqlite3.Error):  # it is being discarded because it already failed
        conn.close()
