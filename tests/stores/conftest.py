"""Stores to test against: memory, a real SQLite file, and a real PostgreSQL server.

PostgreSQL comes from ``SPAWN_LAB_TEST_PG_URL`` (``scripts/with-postgres`` sets it). Without it
the PostgreSQL tests fail, so CI can never pass by skipping them; ``SPAWN_LAB_SKIP_PG=1`` skips
them instead, for quick local runs only (ignored when ``CI`` is set).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spawn_lab.stores.base import Store
from spawn_lab.stores.memory import MemoryStore
from spawn_lab.stores.postgres import PostgresStore
from spawn_lab.stores.sqlite import SQLiteStore

PG_ENV = "SPAWN_LAB_TEST_PG_URL"


def pg_url() -> str:
    """The test server's URL, or fail (skip only on explicit request, never in CI)."""
    url = os.environ.get(PG_ENV, "")
    if url:
        return url
    if os.environ.get("SPAWN_LAB_SKIP_PG") == "1" and not os.environ.get("CI"):
        pytest.skip(f"SPAWN_LAB_SKIP_PG=1 and no {PG_ENV}")
    pytest.fail(
        f"{PG_ENV} is not set: run the tests under scripts/with-postgres "
        "(e.g. `scripts/with-postgres .venv/bin/pytest tests/stores`), or set "
        "SPAWN_LAB_SKIP_PG=1 to skip PostgreSQL tests locally",
        pytrace=False,
    )


def unique(prefix: str) -> str:
    """A system name no other test (or earlier run on a shared server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def delete_pg_systems(url: str, prefix: str) -> None:
    """Remove the rows of every system whose name starts with ``prefix``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM spawn_lab_snapshots WHERE starts_with(system, %s)", (prefix,))


@dataclass
class StoreKit:
    """A store under test, how to open a second view of the same data, and unique names."""

    kind: str
    store: Store
    reopen: Callable[[], Store]
    url: str = ""
    prefix: str = field(default_factory=lambda: unique("t"))
    opened: list[Store] = field(default_factory=list)

    def system(self, name: str = "sys") -> str:
        return f"{self.prefix}-{name}"

    def other_view(self) -> Store:
        """Another store on the same data (a new connection, or the same memory)."""
        store = self.reopen()
        self.opened.append(store)
        return store


def _open_kit(kind: str, tmp_path: Path) -> StoreKit:
    if kind == "memory":
        memory = MemoryStore()
        return StoreKit(kind, memory, lambda: memory)
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        return StoreKit(kind, SQLiteStore(url), lambda: SQLiteStore(url), url=url)
    url = pg_url()
    return StoreKit(kind, PostgresStore(url), lambda: PostgresStore(url), url=url)


def _close_kit(made: StoreKit) -> None:
    for store in [*made.opened, made.store]:
        store.close()
    if made.kind == "postgres":
        delete_pg_systems(made.url, made.prefix)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreKit]:
    """Each store of the contract."""
    made = _open_kit(request.param, tmp_path)
    try:
        yield made
    finally:
        _close_kit(made)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreKit]:
    """The stores with a database underneath, for what only they can do (close, corrupt rows)."""
    made = _open_kit(request.param, tmp_path)
    try:
        yield made
    finally:
        _close_kit(made)


@pytest.fixture
def pg_system() -> Iterator[tuple[str, str]]:
    """``(url, system name)`` on the test server; the system's rows are deleted afterwards."""
    url = pg_url()
    name = unique("rel")
    try:
        yield url, name
    finally:
        delete_pg_systems(url, name)
