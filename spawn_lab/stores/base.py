"""The store contract every state store keeps, and ``open_store`` to pick one by URL.

The contract (one test suite, ``tests/stores/test_contract.py``, checks it on every store):

1. A store keeps the *full history* of each actor ``(system, actor)``: every saved snapshot is a
   row with its revision, status, state (type URL plus bytes), tags and wall-clock timestamp.
   History is never rewritten: restoring an old revision saves it again as a new revision.
2. ``save(snapshots)`` is atomic and durable when it returns: all rows or none, as one
   transaction. Revisions of one actor only increase. A row whose revision is not greater than
   the actor's latest stored revision is a conflict: the store raises
   :class:`~spawn_lab.core.errors.ConflictError` and writes nothing (optimistic revision check,
   so two writers never silently lose each other's writes). The exception is a row with the
   *same* revision and the same data, which only updates the status and tags (a deactivation
   write, or a retried commit). One batch may hold several rows of one actor, each checked
   against the rows before it.
3. ``load(system, actor, revision=0)`` returns the latest row (``revision=0``) or the row with
   exactly that revision, or ``None``. ``load_at(system, actor, when)`` returns the latest row
   saved at or before ``when`` (Unix seconds).
4. ``revisions(system, actor)`` lists every stored revision, oldest first.
5. ``actors(system)`` lists the actor names that have at least one row, sorted by code point.
6. ``fork(system, new_system, at=None)`` copies, for every actor of ``system``, its history up
   to ``at`` (all of it for ``None``) into ``new_system``, and returns how many actors it copied.
   Copied rows keep their revisions and timestamps. ``new_system`` must have no stored rows:
   otherwise the store raises :class:`~spawn_lab.core.errors.ConflictError` and copies nothing,
   since replacing its history would rewrite it.
7. Failures raise :class:`~spawn_lab.core.errors.StoreError` (naming the actor where there is
   one), never a driver's own exception type; a row that cannot be read raises
   :class:`~spawn_lab.core.errors.CorruptStateError` for that actor only.
8. Stores are synchronous and thread-safe; the runtime calls them from its writer thread and
   from callers' threads.

Stores hold bytes only. Encoding states to bytes (and encryption) happens above them, in the
runtime's persister, so every store behaves the same for every payload type.

Optional part: projection tables (spec §8.4, §8.5; ``tests/projections/`` checks it).

9. ``projection_tables()`` returns the :class:`~spawn_lab.stores.tables.ProjectionTables` of
   the store's database, one shared object per store (so its column cache is shared by every
   system on the store), or ``None`` if the store has none; the runtime then keeps projections
   in a private in-memory SQLite database. A store that has them gives ``ProjectionTables`` a
   ``session(doing, write)``: a connection whose ``execute(sql, params)`` returns a cursor; a
   write session is one transaction, committed at the end of the block and rolled back on any
   exception; database errors surface as :class:`~spawn_lab.core.errors.StoreError`. The memory
   store keeps them in an in-memory SQLite database, so views run the same SQL everywhere; the
   SQLite store keeps them in its own file, PostgreSQL in real tables of its database.
   Projection rows hold plaintext columns (they must be queryable), even when states are
   encrypted.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from spawn_lab.core.errors import RegistrationError

if TYPE_CHECKING:
    from spawn_lab.stores.tables import ProjectionTables

__all__ = ("RevisionInfo", "Snapshot", "Store", "open_store")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One stored revision of one actor's state."""

    system: str
    actor: str
    revision: int
    type_url: str
    data: bytes
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str = "ACTIVATED"
    parent: str = ""
    timestamp: float = 0.0


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """A revision's place in history, without its data."""

    revision: int
    status: str
    timestamp: float
    type_url: str


class Store(abc.ABC):
    """A state store; see the module docstring for the contract."""

    url: str = ""

    @abc.abstractmethod
    def save(self, snapshots: Sequence[Snapshot]) -> None:
        """Write all rows in one transaction, durably, or raise and write none."""

    @abc.abstractmethod
    def load(self, system: str, actor: str, revision: int = 0) -> Snapshot | None:
        """The latest row, or the row with exactly ``revision``."""

    @abc.abstractmethod
    def load_at(self, system: str, actor: str, when: float) -> Snapshot | None:
        """The latest row saved at or before ``when``."""

    @abc.abstractmethod
    def revisions(self, system: str, actor: str) -> list[RevisionInfo]:
        """Every stored revision, oldest first."""

    @abc.abstractmethod
    def actors(self, system: str) -> list[str]:
        """Names of the actors of ``system`` that have stored state."""

    @abc.abstractmethod
    def fork(self, system: str, new_system: str, at: float | None = None) -> int:
        """Copy history up to ``at`` into ``new_system``; return the number of actors copied."""

    def projection_tables(self) -> ProjectionTables | None:
        """The store's projection tables (contract item 9), or None if it keeps none."""
        return None

    def close(self) -> None:  # noqa: B027 - optional for stores that hold nothing open
        """Release connections and files."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


def open_store(url: str | Store | None) -> Store:
    """Open a store by URL: ``memory://``, ``sqlite:///path.db`` or ``postgresql://...``."""
    if isinstance(url, Store):
        return url
    if url is None or url in ("memory://", "memory:"):
        from spawn_lab.stores.memory import MemoryStore

        return MemoryStore()
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from spawn_lab.stores.sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        from spawn_lab.stores.postgres import PostgresStore

        return PostgresStore(url)
    raise RegistrationError(
        f"unknown store URL {url!r}: use memory://, sqlite:///path/to/file.db or "
        "postgresql://user:pass@host:port/db"
    )
