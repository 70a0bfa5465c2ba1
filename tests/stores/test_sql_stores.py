"""What only the database stores do: URLs, opening, and secrets kept out of messages."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from spawn_lab.core.errors import StoreError
from spawn_lab.stores.base import Snapshot, open_store
from spawn_lab.stores.postgres import PostgresStore, mask_url
from spawn_lab.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(30)


def test_sqlite_url_with_three_slashes_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    store = open_store("sqlite:///data/state.db")
    try:
        assert isinstance(store, SQLiteStore)
        assert (tmp_path / "data" / "state.db").exists()
    finally:
        store.close()


def test_sqlite_url_with_four_slashes_is_absolute(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/abs.db")
    try:
        assert store.path == f"{tmp_path}/abs.db" and str(tmp_path).startswith("/")
        assert (tmp_path / "abs.db").exists()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:///:memory:"])
def test_sqlite_url_without_a_file_is_refused_clearly(url: str) -> None:
    with pytest.raises(StoreError, match=r"sqlite:///|memory://"):
        SQLiteStore(url)


def test_sqlite_store_in_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the database file"):
        SQLiteStore(f"sqlite:///{tmp_path}/missing/state.db")


def test_sqlite_store_opened_read_only_reads_and_refuses_writes_naming_the_actor(
    tmp_path: Path,
) -> None:
    writable = SQLiteStore(f"sqlite:///{tmp_path}/s.db")
    writable.save([Snapshot("sys", "a", 1, "t", b"x")])
    writable.close()
    read_only = SQLiteStore(f"sqlite:///{tmp_path}/s.db?mode=ro")
    try:
        assert read_only.load("sys", "a") is not None
        with pytest.raises(StoreError, match="cannot save actor 'a': the database is read-only"):
            read_only.save([Snapshot("sys", "a", 2, "t", b"y")])
    finally:
        read_only.close()


def test_sqlite_store_in_a_file_that_is_not_a_database_says_so(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        SQLiteStore(f"sqlite:///{tmp_path}/notes.db")


def test_postgres_url_masks_passwords_everywhere() -> None:
    assert mask_url("postgresql://ann:s3cret@db:5432/x") == "postgresql://ann:***@db:5432/x"
    assert mask_url("postgres://ann@db/x?password=s3cret&sslmode=require") == (
        "postgres://ann@db/x?password=***&sslmode=require"
    )
    assert mask_url("postgresql://db/x") == "postgresql://db/x"


def test_postgres_store_that_cannot_connect_raises_store_error_without_the_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://ann:s3cret-pw@127.0.0.1:{port}/nothing"
    with pytest.raises(StoreError, match="cannot create the table") as caught:
        PostgresStore(url, connect_timeout_s=2)
    assert "s3cret-pw" not in str(caught.value)
    assert "ann:***@127.0.0.1" in str(caught.value)


def test_postgres_store_repr_and_url_hide_the_password() -> None:
    url = os.environ.get("SPAWN_LAB_TEST_PG_URL", "")
    if not url:
        pytest.fail("SPAWN_LAB_TEST_PG_URL is not set: run under scripts/with-postgres")
    store = open_store(url)
    try:
        password = url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
        assert password and password not in store.url and password not in repr(store)
        assert "***" in repr(store)
    finally:
        store.close()
