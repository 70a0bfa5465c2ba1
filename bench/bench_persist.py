"""Persistence figures of issue 3 §7: write-behind and durable invocations against raw drivers.

Every throughput figure drives the ``bench_core`` counter (``add(n)`` returns and stores
``state + n``), so it compares with ``floor_ask`` and ``ask_async`` of the same run, and each
figure checks at the end that the counter counted *and* that the store holds its last state.

- ``invoke_persisted_writebehind``: ``await ref.ask_async("add", 1)`` (the ``ask_async`` loop of
  bench_core) to a stateful actor on a SQLite store in a temporary file, with a snapshot interval
  of 0, so every change is saved (write-behind: the writer thread commits whatever piled up).
  Each trial ends with ``deactivate`` and a flush of the writer, inside the timing, so every
  trial leaves its final state on disk. Ratio vs ``floor_ask``.
- ``sqlite_full_upsert``: the floor for a durable invocation. Raw ``sqlite3``, WAL,
  ``synchronous=FULL``, one ``INSERT ... ON CONFLICT DO UPDATE`` per transaction, into a table
  made with the SQLite store's own DDL (same columns and primary key), revision going up by one
  per row as the store's history does.
- ``invoke_durable_1caller``: the same ``ask_async`` loop on a ``durable=True`` SQLite system;
  every reply waits for its commit (one fsync). Ratio vs ``sqlite_full_upsert``; trials of the
  two alternate, with both files in the same directory.
- ``invoke_durable_100callers``: ``durable=True`` SQLite, 100 plain threads, each with its own
  actor (instances of one UNNAMED template), each looping on the blocking ``ref.ask``. Threads,
  not tasks: a durable ask waits for its commit in the calling thread, so 100 tasks on one loop
  would commit one at a time. Concurrent commits share a transaction (group commit); the note
  gives the mean rows per commit. Ratio vs ``floor_ask``.
- ``pg_raw_upsert_100callers`` / ``pg_invoke_durable_100callers``: PostgreSQL from
  ``SPAWN_LAB_TEST_PG_URL`` (``make bench`` runs under ``scripts/with-postgres``). The raw figure
  is 100 threads doing a psycopg upsert (autocommit, one row per transaction,
  ``synchronous_commit=on`` as the store sets it) into the store's own table, over as many
  connections as the server allows (100 when it can; a stock server's ``max_connections=100``
  leaves fewer, the note says how many). The durable figure is the 100-thread loop above on a
  ``durable=True`` PostgreSQL system. Reported side by side, no target.
- ``restore_10k_revisions_ms`` / ``fork_10k_revisions_ms``: one actor with 10,000 stored
  revisions on SQLite; the wall time of ``system.restore(name, 1)`` (a new, durably stored
  revision) and of ``system.fork(new_name)`` (copying the 10k rows and opening the new system).
  Best of the trials; reported, no target.

Throughput figures compared with each other run in alternating trials (floor, write-behind and
100 durable callers round robin; the raw SQLite upsert and one durable caller; the raw and the
durable PostgreSQL figures), so that background load and fsync swings hit a figure and its base
alike. The notes give ``floor_ask`` interleaved with the write-behind and 100-caller trials.
"""

from __future__ import annotations

import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import spawn_lab as sl
from bench import harness
from bench.bench_core import Case, _ask_async_timed, _counter, floor_case, round_robin
from bench.harness import RecordFn, Sample, Target, wanted
from spawn_lab.protocol import payloads
from spawn_lab.stores.base import Snapshot

N_WRITEBEHIND = 30_000
N_SQLITE = 1_000
N_DURABLE_100 = 10_000
N_PG = 5_000
CALLERS = 100
REVISIONS = 10_000
PG_ENV = "SPAWN_LAB_TEST_PG_URL"
#: One fsync per operation swings a lot on a shared disk: take twice the trials, short ones.
FSYNC_TRIALS_FACTOR = 2

TARGETS = {
    "invoke_persisted_writebehind": Target("ratio", ">=", 0.27, ">= 0.27x floor"),
    "sqlite_full_upsert": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "invoke_durable_1caller": Target("ratio", ">=", 0.8, ">= 0.8x sqlite_full_upsert"),
    "invoke_durable_100callers": Target("ratio", ">=", 0.2, ">= 0.2x floor"),
    "pg_raw_upsert_100callers": Target("ratio", "base", 1.0, "1.0 (floor)"),
    "pg_invoke_durable_100callers": Target("ratio", "base", 1.0, "report"),
    "restore_10k_revisions_ms": Target("value", "base", 0.0, "report"),
    "fork_10k_revisions_ms": Target("value", "base", 0.0, "report"),
}

_UPSERT_COLUMNS = "system, actor, revision, status, parent, type_url, data, tags, timestamp"
_UPSERT_SET = (
    "status = excluded.status, data = excluded.data, tags = excluded.tags, "
    "timestamp = excluded.timestamp"
)
TYPE_URL = payloads.encode(1)[0]


def run(record: RecordFn) -> None:
    tmp = tempfile.mkdtemp(prefix="spawn-lab-bench-persist-")
    try:
        _sqlite_rates(record, tmp)
        _sqlite_durable(record, tmp)
        _postgres(record)
        _history(record, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------------


def _make(
    record: RecordFn, cases: dict[str, Case], name: str, make: Callable[[], Case], unit: str
) -> None:
    try:
        cases[name] = make()
    except Exception as exc:
        record(name, None, unit, note=f"failed: {type(exc).__name__}: {exc}")


def _stored_state(system: sl.ActorSystem, name: str) -> tuple[object, int]:
    """The latest stored state of ``name`` and its revision, read from the store itself."""
    snap = system.store.load(system.name, name)
    if snap is None:
        raise AssertionError(f"nothing stored for {name!r}")
    return system._persister.decode(snap), snap.revision


def _check_stored(system: sl.ActorSystem, name: str, expected: int) -> None:
    live, _, revision = system.inspect(name)
    stored, stored_revision = _stored_state(system, name)
    if live != expected or stored != expected or stored_revision != revision:
        raise AssertionError(
            f"{name}: live {live!r} (rev {revision}), stored {stored!r} (rev {stored_revision}), "
            f"expected {expected}"
        )


def _fs_type(path: str) -> str:
    """The filesystem type holding ``path`` (fsync figures mean nothing on tmpfs)."""
    best, kind = "", "unknown filesystem"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1]
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) > len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


class _Callers:
    """``count`` plain threads, kept across trials; ``timed(n)`` has each do ``n // count`` ops.

    ``work(i, ops)`` is caller ``i``'s loop. Timing starts when all are released and ends when
    the last one is done, so thread start-up is not in the figure.
    """

    def __init__(self, count: int, work: Callable[[int, int], None], name: str) -> None:
        self.count = count
        self._work = work
        self._ops = 0
        self._stop = False
        self._errors: list[BaseException] = []
        self._start = threading.Barrier(count + 1)
        self._done = threading.Barrier(count + 1)
        self._threads = [
            threading.Thread(target=self._body, args=(i,), name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _body(self, i: int) -> None:
        while True:
            try:
                self._start.wait()
            except threading.BrokenBarrierError:
                return
            if self._stop:
                return
            try:
                self._work(i, self._ops)
            except BaseException as exc:
                self._errors.append(exc)
            try:
                self._done.wait()
            except threading.BrokenBarrierError:
                return

    def timed(self, n: int) -> float:
        self._ops = n // self.count
        self._start.wait(timeout=120)
        started = time.perf_counter()
        self._done.wait(timeout=300)
        elapsed = time.perf_counter() - started
        if self._errors:
            raise self._errors[0]
        return elapsed

    def close(self) -> None:
        self._stop = True
        self._start.abort()
        self._done.abort()
        for thread in self._threads:
            thread.join(timeout=10)


class _CommitSizes:
    """Wraps ``store.save`` to count rows per transaction (the group-commit size)."""

    def __init__(self, system: sl.ActorSystem) -> None:
        self.commits = 0
        self.rows = 0
        store: Any = system.store
        save = store.save

        def counted(snapshots: Any) -> None:
            save(snapshots)
            if self.counting:
                self.commits += 1
                self.rows += len(snapshots)

        self.counting = True
        store.save = counted

    def stop(self) -> None:
        """Stop counting (before the final checks and close, which write rows of their own)."""
        self.counting = False

    def note(self) -> str:
        mean = self.rows / self.commits if self.commits else 0.0
        return f"{self.rows:,} rows in {self.commits:,} commits ({mean:.1f} per commit)"


@dataclass
class _Case(Case):
    sizes: _CommitSizes | None = None


def _durable_callers_case(system: sl.ActorSystem, n: int, label: str) -> Case:
    """``CALLERS`` threads, each its own actor (an UNNAMED instance), blocking durable asks."""
    try:
        system.register(_counter("UNNAMED"))
        refs = [system.spawn(f"caller-{i:03d}", "tpl") for i in range(CALLERS)]
        for ref in refs:
            ref.ask("add", 1)  # activate (and store a first revision) outside the timing
    except BaseException:
        system.close()
        raise
    sizes = _CommitSizes(system)

    def work(i: int, ops: int) -> None:
        ask = refs[i].ask
        for _ in range(ops):
            ask("add", 1)

    callers = _Callers(CALLERS, work, label)

    def finish(trials: int) -> None:
        sizes.stop()
        try:
            callers.close()
            for ref in refs:
                _check_stored(system, ref.name, 1 + (n // CALLERS) * trials)
        finally:
            system.close()

    return _Case(n, callers.timed, finish, sizes=sizes)


# -- write-behind and 100 durable callers on SQLite, with the floor interleaved --------------------


def _sqlite_rates(record: RecordFn, tmp: str) -> None:
    names = ("invoke_persisted_writebehind", "invoke_durable_100callers")
    if not any(wanted(n) for n in names):
        return
    cases: dict[str, Case] = {"floor": floor_case()}
    if wanted(names[0]):
        _make(record, cases, names[0], lambda: _writebehind_case(tmp), "ops/s")
    if wanted(names[1]):
        url = f"sqlite:///{tmp}/durable100.db"
        _make(
            record,
            cases,
            names[1],
            lambda: _durable_callers_case(
                sl.ActorSystem("bench-persist-d100", store=url, durable=True),
                N_DURABLE_100,
                "bench-d100",
            ),
            "ops/s",
        )
    samples, failed = round_robin(cases)
    floor = samples.get("floor")
    for name in names:
        if name in failed:
            record(name, None, "ops/s", note=failed[name])
        elif name in samples:
            sample = samples[name]
            extra = ""
            if floor is not None:
                extra = (
                    f"; floor interleaved here {floor.best:,.0f} ops/s "
                    f"({sample.best / floor.best:.2f}x)"
                )
            case = cases[name]
            sizes = case.sizes.note() + "; " if isinstance(case, _Case) and case.sizes else ""
            note = f"{case.note}; " if case.note else ""
            record(name, sample.best, "ops/s", note=f"{note}{sizes}{sample.note()}{extra}")


def _writebehind_case(tmp: str) -> Case:
    system = sl.ActorSystem("bench-persist-wb", store=f"sqlite:///{tmp}/writebehind.db")
    try:
        # snapshot interval 0: every change is saved, write-behind (the issue's "state saved on
        # every change"); the writer batches what piles up while it commits
        counter = system.register(_counter(snapshot_interval_ms=0))
        counter.ask("add", 1)
    except BaseException:
        system.close()
        raise
    asks = _ask_async_timed(counter)
    persister = system._persister
    stored = _CommitSizes(system)

    def timed(n: int) -> float:
        elapsed = asks(n)
        started = time.perf_counter()
        system.deactivate(counter.name)  # its state goes to the writer...
        persister.flush()  # ...and is on disk before the trial ends
        return elapsed + time.perf_counter() - started

    def finish(trials: int) -> None:
        stored.stop()
        try:
            _check_stored(system, counter.name, 1 + N_WRITEBEHIND * trials)
        finally:
            system.close()

    return _Case(
        N_WRITEBEHIND,
        timed,
        finish,
        note="each trial ends with deactivate + flush (timed)",
        sizes=stored,
    )


# -- one durable caller against the raw sqlite3 upsert ---------------------------------------------


def _sqlite_durable(record: RecordFn, tmp: str) -> None:
    names = ("sqlite_full_upsert", "invoke_durable_1caller")
    if not any(wanted(n) for n in names):
        return
    cases: dict[str, Case] = {}
    _make(record, cases, names[0], lambda: _raw_sqlite_case(tmp), "ops/s")
    if wanted(names[1]):
        _make(record, cases, names[1], lambda: _durable_one_case(tmp), "ops/s")
    samples, failed = round_robin(cases, FSYNC_TRIALS_FACTOR)
    ratios: dict[str, float | str] = {names[0]: 1.0, names[1]: names[0]}
    for name in names:
        if name in failed:
            record(name, None, "ops/s", note=failed[name])
        elif name in samples:
            note = f"{cases[name].note}; " if cases[name].note else ""
            sample = samples[name]
            record(name, sample.best, "ops/s", ratio=ratios[name], note=note + sample.note())


def _raw_sqlite_case(tmp: str) -> Case:
    from spawn_lab.stores.sqlite import _SCHEMA  # the store's own table: same columns and key

    conn = sqlite3.connect(os.path.join(tmp, "raw.db"), isolation_level=None)
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
        raise RuntimeError("no WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(_SCHEMA)
    sql = (
        f"INSERT INTO spawn_lab_snapshots ({_UPSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT (system, actor, revision) DO UPDATE SET {_UPSERT_SET}"
    )
    revision = 0

    def timed(n: int) -> float:
        nonlocal revision
        execute = conn.execute
        started = time.perf_counter()
        for _ in range(n):
            revision += 1
            execute("BEGIN")
            execute(
                sql,
                (
                    "bench-raw",
                    "counter",
                    revision,
                    "ACTIVATED",
                    "",
                    TYPE_URL,
                    str(revision).encode(),
                    "{}",
                    time.time(),
                ),
            )
            execute("COMMIT")
        return time.perf_counter() - started

    def finish(trials: int) -> None:
        try:
            count = conn.execute("SELECT count(*) FROM spawn_lab_snapshots").fetchone()[0]
            if count != N_SQLITE * trials:
                raise AssertionError(f"{count} rows, expected {N_SQLITE * trials}")
        finally:
            conn.close()

    note = f"WAL, synchronous=FULL, 1 row per transaction; files on {_fs_type(tmp)}"
    return Case(N_SQLITE, timed, finish, note=note)


def _durable_one_case(tmp: str) -> Case:
    system = sl.ActorSystem("bench-persist-d1", store=f"sqlite:///{tmp}/durable1.db", durable=True)
    try:
        counter = system.register(_counter())
        counter.ask("add", 1)
    except BaseException:
        system.close()
        raise

    def finish(trials: int) -> None:
        try:
            _check_stored(system, counter.name, 1 + N_SQLITE * trials)
        finally:
            system.close()

    return Case(
        N_SQLITE, _ask_async_timed(counter), finish, note="await ref.ask_async, 1 fsync each"
    )


# -- PostgreSQL: raw psycopg upsert vs durable system, 100 callers each ----------------------------


def _postgres(record: RecordFn) -> None:
    names = ("pg_raw_upsert_100callers", "pg_invoke_durable_100callers")
    if not any(wanted(n) for n in names):
        return
    url = os.environ.get(PG_ENV)
    if not url:
        for name in names:
            record(
                name,
                None,
                "ops/s",
                note=f"{PG_ENV} is not set: run under scripts/with-postgres "
                "(make bench does), e.g. scripts/with-postgres .venv/bin/python -m bench",
            )
        return
    import psycopg

    tag = f"{os.getpid()}-{int(time.time())}"
    systems = (f"bench-pg-raw-{tag}", f"bench-pg-durable-{tag}")
    cases: dict[str, Case] = {}
    try:
        # the durable system first: the raw pool then takes what connections are left
        if wanted(names[1]):
            _make(
                record,
                cases,
                names[1],
                lambda: _durable_callers_case(
                    sl.ActorSystem(systems[1], store=url, durable=True), N_PG, "bench-pgd"
                ),
                "ops/s",
            )
        raw: dict[str, Case] = {}
        _make(record, raw, names[0], lambda: _raw_pg_case(url, systems[0]), "ops/s")
        cases = {**raw, **cases}  # raw first in each round
        samples, failed = round_robin(cases)
    finally:
        with suppress(psycopg.Error), psycopg.connect(url, autocommit=True) as conn:
            # leave the database as it was
            conn.execute("DELETE FROM spawn_lab_snapshots WHERE system = ANY(%s)", [list(systems)])
    ratios: dict[str, float | str] = {names[0]: 1.0, names[1]: names[0]}
    for name in names:
        if name in failed:
            record(name, None, "ops/s", note=failed[name])
        elif name in samples:
            case = cases[name]
            sizes = case.sizes.note() + "; " if isinstance(case, _Case) and case.sizes else ""
            note = f"{case.note}; " if case.note else ""
            sample = samples[name]
            record(
                name, sample.best, "ops/s", ratio=ratios[name], note=f"{note}{sizes}{sample.note()}"
            )


def _raw_pg_case(url: str, system: str) -> Case:
    import psycopg
    from psycopg.types.json import Jsonb

    from spawn_lab.stores.postgres import PostgresStore

    PostgresStore(url).close()  # creates the table (the store's own DDL) if it is missing
    with psycopg.connect(url, autocommit=True) as conn:
        settings: Any = conn.execute(
            "SELECT current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int, "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
        ).fetchone()
    limit, reserved, used = settings
    # leave room for the durable system's store (it holds up to 8) and a few others
    size = max(1, min(CALLERS, limit - reserved - used - 12))
    conns = [psycopg.connect(url, autocommit=True) for _ in range(size)]
    for conn in conns:
        conn.execute("SET synchronous_commit TO on")
    pool: queue.LifoQueue[Any] = queue.LifoQueue()
    for conn in conns:
        pool.put(conn)
    sql = (
        f"INSERT INTO spawn_lab_snapshots ({_UPSERT_COLUMNS}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (system, actor, revision) DO UPDATE SET {_UPSERT_SET}"
    )
    revisions = [0] * CALLERS
    tags = Jsonb({})

    def work(i: int, ops: int) -> None:
        actor = f"caller-{i:03d}"
        for _ in range(ops):
            revisions[i] += 1
            conn = pool.get()
            try:
                conn.execute(
                    sql,
                    (
                        system,
                        actor,
                        revisions[i],
                        "ACTIVATED",
                        "",
                        TYPE_URL,
                        str(revisions[i]).encode(),
                        tags,
                        time.time(),
                    ),
                )
            finally:
                pool.put(conn)

    callers = _Callers(CALLERS, work, "bench-pgraw")

    def finish(trials: int) -> None:
        try:
            callers.close()
            with psycopg.connect(url, autocommit=True) as conn:
                found: Any = conn.execute(
                    "SELECT count(*) FROM spawn_lab_snapshots WHERE system = %s", (system,)
                ).fetchone()
            count = found[0]
            if count != N_PG * trials:
                raise AssertionError(f"{count} rows, expected {N_PG * trials}")
        finally:
            for conn in conns:
                conn.close()

    note = f"{CALLERS} threads over {size} connections (server max_connections {limit})"
    return Case(N_PG, callers.timed, finish, note=note)


# -- restore and fork of an actor with 10k revisions -----------------------------------------------


def _history(record: RecordFn, tmp: str) -> None:
    names = ("restore_10k_revisions_ms", "fork_10k_revisions_ms")
    if not any(wanted(n) for n in names):
        return
    try:
        system = sl.ActorSystem("bench-persist-history", store=f"sqlite:///{tmp}/history.db")
    except Exception as exc:
        for name in names:
            record(name, None, "ms", note=f"failed: {type(exc).__name__}: {exc}")
        return
    try:
        # the history first, in one transaction, then the actor (registering loads its latest)
        wall = time.time() - REVISIONS
        system.store.save(
            [
                Snapshot(
                    system.name,
                    "counter",
                    rev,
                    *payloads.encode(rev),
                    {},
                    "ACTIVATED",
                    "",
                    wall + rev,
                )
                for rev in range(1, REVISIONS + 1)
            ]
        )
        counter = system.register(_counter())
        if len(system.revisions(counter.name)) != REVISIONS:
            raise AssertionError("history not stored")
        if wanted(names[0]):
            _measure(record, names[0], lambda k: _restore_once(system, counter.name))
        if wanted(names[1]):
            _measure(record, names[1], lambda k: _fork_once(system, counter.name, k))
    except Exception as exc:
        for name in names:
            record(name, None, "ms", note=f"failed: {type(exc).__name__}: {exc}")
    finally:
        system.close()


def _measure(record: RecordFn, name: str, once: Callable[[int], float]) -> None:
    try:
        once(-1)  # warm up (the first restore also activates the actor)
        times = [once(k) * 1000 for k in range(harness.TRIALS)]
    except Exception as exc:
        record(name, None, "ms", note=f"failed: {type(exc).__name__}: {exc}")
        return
    sample = Sample(times)
    record(
        name,
        min(times),
        "ms",
        note=f"best of {len(times)}; median {sample.median:.1f}, worst {max(times):.1f} ms",
    )


def _restore_once(system: sl.ActorSystem, name: str) -> float:
    started = time.perf_counter()
    revision = system.restore(name, 1)
    elapsed = time.perf_counter() - started
    if revision <= REVISIONS or system.state(name) != 1:
        raise AssertionError(f"restore gave revision {revision}, state {system.state(name)!r}")
    return elapsed


def _fork_once(system: sl.ActorSystem, name: str, k: int) -> float:
    started = time.perf_counter()
    fork = system.fork(f"bench-persist-fork{k + 1}")
    elapsed = time.perf_counter() - started
    try:
        copied = len(fork.store.revisions(fork.name, name))
        if copied < REVISIONS:
            raise AssertionError(f"fork holds {copied} revisions, expected >= {REVISIONS}")
    finally:
        fork.close()
    return elapsed
