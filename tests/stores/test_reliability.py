"""Reliability with real processes, files and disks: kill -9, full and read-only disks, corrupt
rows, and concurrent writers, on SQLite and PostgreSQL.

Disks are real: a 1 MiB tmpfs filled to ENOSPC for "full", and the immutable attribute
(``chattr +i``, which binds root too, unlike ``chmod``) for "read-only". Both need root; without
it these tests skip locally and fail in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spawn_lab import Actor, ActorSystem, EventKind, Value
from spawn_lab.core.errors import ConflictError, CorruptStateError, StoreError
from spawn_lab.protocol import payloads
from spawn_lab.stores.base import Store, open_store

pytestmark = pytest.mark.timeout(60)

CHILD = Path(__file__).with_name("child.py")
ROOT = Path(__file__).parents[2]


# -- helpers --------------------------------------------------------------------------------------


class Child:
    """A child Python process whose stdout lines are read with a bound, never a blind sleep."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def line(self, timeout: float = 30.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from the child within {timeout} s") from None
        if line is None:
            raise AssertionError(f"the child exited early: {self.stderr()}")
        return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> list[str]:
        """SIGKILL it; return the lines it wrote before it died."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        rest = []
        while (line := self._lines.get_nowait()) is not None:
            rest.append(line)
        return rest

    def finish(self, timeout: float = 45.0) -> list[str]:
        """Wait for a clean exit; return the rest of its output."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(timeout=10)
        assert self.proc.returncode == 0, self.stderr()
        rest = []
        while (line := self._lines.get_nowait()) is not None:
            rest.append(line)
        return rest

    def stderr(self) -> str:
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def children(*argv: tuple[str, ...]) -> Iterator[list[Child]]:
    started = [Child(*args) for args in argv]
    try:
        yield started
    finally:
        for child in started:
            child.close()


def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Bounded polling for something another thread or process does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def needs_root_tool(reason: str) -> None:
    """Skip locally, fail in CI: CI runs as root and must exercise real disks."""
    message = f"{reason}; the disk tests need root (run them in CI, or as root)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def counter(name: str = "counter", **settings: object) -> Actor:
    actor = Actor(name, state={"n": 0}, **settings)  # type: ignore[arg-type]

    @actor.action
    def add(ctx: object, amount: object) -> Value:
        n = ctx.state["n"] + (amount if isinstance(amount, int) else 1)  # type: ignore[attr-defined]
        return Value(n, state={"n": n})

    @actor.action
    def keep(ctx: object, amount: object) -> Value:
        n = ctx.state["n"] + (amount if isinstance(amount, int) else 1)  # type: ignore[attr-defined]
        return Value(n, state={"n": n}, checkpoint=True)

    return actor


def stored_n(store: Store, system: str, actor: str) -> int | None:
    row = store.load(system, actor)
    return None if row is None else payloads.decode(row.type_url, row.data)["n"]  # type: ignore[index]


def save_failures(system: ActorSystem, actor: str) -> list[str]:
    return [
        e.detail["error"]
        for e in system.events()
        if e.kind is EventKind.FAIL
        and e.actor == actor
        and isinstance(e.detail, dict)
        and e.detail.get("save")
    ]


# -- kill -9 during a write storm -----------------------------------------------------------------


def storm_and_kill(url: str, system: str, rounds: int = 5, acks: int = 120) -> dict[str, int]:
    """Kill a durable writer mid-storm ``rounds`` times; return the last acked value per actor."""
    acked: dict[str, int] = {}
    for _ in range(rounds):
        with children(("storm", url, system, "3")) as (child,):
            assert child.line() == "ready"
            lines = [child.line() for _ in range(acks)]
            lines += child.kill()
        for line in lines:
            name, value = line.split()
            acked[name] = max(acked.get(name, 0), int(value))
    return acked


def check_every_ack_survived(store: Store, system: str, acked: dict[str, int]) -> None:
    assert sorted(acked) == ["c0", "c1", "c2"]
    for name, last in acked.items():
        revisions = [r.revision for r in store.revisions(system, name)]
        assert revisions == list(range(1, len(revisions) + 1)), f"{name}: gaps or reordering"
        # every acknowledged write is there; at most the one in flight at the kill is extra
        assert last <= len(revisions) <= last + 1, (name, last, len(revisions))
        for revision in (1, len(revisions) // 2, len(revisions)):
            row = store.load(system, name, revision)
            assert row is not None
            assert payloads.decode(row.type_url, row.data) == {"n": revision}


@pytest.mark.slow
def test_sqlite_store_keeps_every_acknowledged_durable_write_through_kill_9(
    tmp_path: Path,
) -> None:
    db = tmp_path / "storm.db"
    url = f"sqlite:///{db}"
    acked = storm_and_kill(url, "storm")
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store = open_store(url)
    try:
        check_every_ack_survived(store, "storm", acked)
    finally:
        store.close()
    with ActorSystem("storm", store=url) as system:
        system.register(counter("c0"))
        assert system.ask("c0", "add") == len(open_store(url).revisions("storm", "c0")) + 1


@pytest.mark.slow
def test_postgres_store_keeps_every_acknowledged_durable_write_through_kill_9(
    pg_system: tuple[str, str],
) -> None:
    url, system = pg_system
    acked = storm_and_kill(url, system)
    store = open_store(url)  # a fresh connection: the server is healthy and answers
    try:
        check_every_ack_survived(store, system, acked)
    finally:
        store.close()


# -- full and read-only disks ---------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs) that can run out of space."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        needs_root_tool(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; return the filler file (delete it to recover)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """Make files and directories read-only for everyone, root included (``chattr +i``)."""
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        needs_root_tool(f"chattr +i is not available here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def check_store_failure_cycle(
    system: ActorSystem,
    store_url: str,
    break_disk: Callable[[], contextlib.AbstractContextManager[None]],
    reason: str,
) -> None:
    """The failure reaches the caller and the trace, memory keeps serving, writes resume."""
    assert system.ask("counter", "keep") == 1
    with break_disk():
        with pytest.raises(StoreError, match=reason) as caught:
            system.ask("counter", "keep", 10)
        assert caught.value.actor == "counter"
        assert "'counter'" in str(caught.value)
        assert any(reason in error for error in save_failures(system, "counter"))
        assert system.ask("counter", "add", 100) == 111  # served from memory
        assert system.state("counter") == {"n": 111}
        # the snapshot timer's write-behind save fails too, and is reported, then retried
        until(lambda: len(save_failures(system, "counter")) >= 2, "the write-behind save to fail")
    view = open_store(store_url)
    try:
        until(lambda: stored_n(view, "disks", "counter") == 111, "the retried write to land")
        assert [r.revision for r in view.revisions("disks", "counter")][-1] >= 2
    finally:
        view.close()


def test_sqlite_full_disk_fails_the_checkpoint_keeps_serving_and_recovers(tiny_disk: Path) -> None:
    url = f"sqlite:///{tiny_disk / 'state.db'}"
    filler: list[Path] = []

    @contextlib.contextmanager
    def full() -> Iterator[None]:
        filler.append(fill(tiny_disk))
        try:
            yield
        finally:
            filler[0].unlink()

    with ActorSystem("disks", store=url) as system:
        system.register(counter(snapshot_interval_ms=20))
        check_store_failure_cycle(system, url, full, "the disk is full")


def test_sqlite_disk_turned_read_only_fails_the_checkpoint_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "ro" / "state.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"

    def read_only() -> contextlib.AbstractContextManager[None]:
        # not the -shm file: SQLite maps it, and a write fault there would be SIGBUS
        return immutable(db, db.with_name("state.db-wal"), db.parent)

    with ActorSystem("disks", store=url) as system:
        system.register(counter(snapshot_interval_ms=20))
        check_store_failure_cycle(system, url, read_only, "disk I/O error")


def test_sqlite_read_only_database_file_serves_reads_refuses_writes_then_recovers(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    url = f"sqlite:///{db}"
    with ActorSystem("disks", store=url) as system:
        system.register(counter())
        system.ask("counter", "keep", 5)
    with contextlib.ExitStack() as read_only:
        read_only.enter_context(immutable(db))
        system = ActorSystem("disks", store=url)
        try:
            system.register(counter(snapshot_interval_ms=20))
            assert system.state("counter") == {"n": 5}  # loaded from the read-only file
            with pytest.raises(StoreError, match="read-only") as caught:
                system.ask("counter", "keep")
            assert caught.value.actor == "counter"
            assert "attempt to write a readonly database" in str(caught.value)
            assert system.ask("counter", "add") == 7  # served from memory
            until(lambda: len(save_failures(system, "counter")) >= 2, "the write-behind to fail")
            read_only.close()  # the file becomes writable; the system stays open
            view = open_store(url)
            try:
                until(lambda: stored_n(view, "disks", "counter") == 7, "the retried write to land")
            finally:
                view.close()
        finally:
            read_only.close()
            system.close()


# -- corruption -----------------------------------------------------------------------------------


def corrupt(kind: str, url: str, system: str, actor: str, column: str, value: object) -> None:
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as raw, raw:
            raw.execute(
                f"UPDATE spawn_lab_snapshots SET {column} = ? WHERE system = ? AND actor = ?",
                (value, system, actor),
            )
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cast = "::jsonb" if column == "tags" else ""
        conn.execute(
            f"UPDATE spawn_lab_snapshots SET {column} = %s{cast} WHERE system = %s AND actor = %s",
            (value, system, actor),
        )


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(kind, url, system name)`` of a real database, cleaned up afterwards."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'state.db'}", "corrupt"
        return
    url, system = request.getfixturevalue("pg_system")
    yield "postgres", url, system


def test_garbage_state_bytes_fail_only_that_actor_naming_it(db_url: tuple[str, str, str]) -> None:
    kind, url, name = db_url
    with ActorSystem(name, store=url) as system:
        for actor in ("a", "b", "c"):
            system.register(counter(actor))
            system.ask(actor, "keep", 3)
    corrupt(kind, url, name, "b", "data", b"\xff\xfe not a protobuf \x00")
    with ActorSystem(name, store=url) as system:
        for actor in ("a", "b", "c"):
            system.register(counter(actor))
        with pytest.raises(CorruptStateError, match="'b'") as caught:
            system.ask("b", "add")
        assert caught.value.actor == "b"
        assert system.ask("a", "add") == 4
        assert system.ask("c", "add") == 4
    view = open_store(url)
    try:
        assert len(view.revisions(name, "b")) == 1  # the bad row is left for a human, not replaced
    finally:
        view.close()


def test_malformed_tags_fail_only_that_actor_naming_it(db_url: tuple[str, str, str]) -> None:
    kind, url, name = db_url
    with ActorSystem(name, store=url) as system:
        for actor in ("a", "b"):
            system.register(counter(actor))
            system.ask(actor, "keep")
    corrupt(kind, url, name, "b", "tags", '["not", "an", "object"]')
    store = open_store(url)
    try:
        with pytest.raises(CorruptStateError, match="'b'") as caught:
            store.load(name, "b")
        assert caught.value.actor == "b"
        assert stored_n(store, name, "a") == 1
    finally:
        store.close()


# -- concurrent writers ---------------------------------------------------------------------------


def test_two_processes_racing_for_one_revision_one_wins_one_gets_conflict(
    db_url: tuple[str, str, str],
) -> None:
    _, url, name = db_url
    with children(("race", url, name), ("race", url, name)) as racers:
        for racer in racers:
            assert racer.line() == "loaded"  # both read revision 0
        for racer in racers:
            racer.send("go")
        outcomes = sorted(racer.line() for racer in racers)
        for racer in racers:
            racer.finish()
    assert outcomes[1] == "won"
    assert outcomes[0].startswith("conflict actor 'shared' already has revision 1")
    store = open_store(url)
    try:
        assert [r.revision for r in store.revisions(name, "shared")] == [1]
    finally:
        store.close()


@pytest.mark.slow
def test_two_processes_incrementing_one_actor_lose_no_update(db_url: tuple[str, str, str]) -> None:
    _, url, name = db_url
    times = 40
    with children(("increment", url, name, str(times)), ("increment", url, name, str(times))) as ps:
        for child in ps:
            assert child.line() == "ready"
        for child in ps:
            child.send("go")
        results = [json.loads(child.line(45)) for child in ps]
        for child in ps:
            child.finish()
    assert [r["wins"] for r in results] == [times, times]
    store = open_store(url)
    try:
        revisions = [r.revision for r in store.revisions(name, "shared")]
        assert revisions == list(range(1, 2 * times + 1))
        for revision in revisions:
            value = store.load(name, "shared", revision).data.split(b":")[0]  # type: ignore[union-attr]
            assert int(value) == revision  # each write built on the one before it
    finally:
        store.close()


def test_second_system_on_one_sqlite_file_gets_a_conflict_not_a_silent_overwrite(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with (
        ActorSystem("shared", store=url, durable=True) as first,
        ActorSystem("shared", store=url, durable=True) as second,
    ):
        first.register(counter())
        assert first.ask("counter", "add", 1) == 1
        second.register(counter())  # activates from revision 1
        assert second.ask("counter", "add", 10) == 11
        with pytest.raises(ConflictError, match="'counter' already has revision 2") as caught:
            first.ask("counter", "add", 1)  # first still holds revision 1 in memory
        assert caught.value.actor == "counter"
        # the loser reloads the winner's state and builds on it, never over it
        assert first.ask("counter", "add", 1) == 12
    view = open_store(url)
    try:
        assert stored_n(view, "shared", "counter") == 12
        assert [r.revision for r in view.revisions("shared", "counter")] == [1, 2, 3]
    finally:
        view.close()
