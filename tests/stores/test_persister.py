"""The persister over a real SQLite file: one actor's failure never sinks another's save."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from spawn_lab.core.clock import ManualClock
from spawn_lab.core.effects import Load, Save, Status
from spawn_lab.core.errors import ConflictError, StoreError
from spawn_lab.core.model import ActorId
from spawn_lab.protocol import payloads
from spawn_lab.runtime.persist import Persister
from spawn_lab.stores.base import RevisionInfo, Snapshot, Store
from spawn_lab.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(30)


class GatedStore(Store):
    """A real SQLite store whose first save waits for ``gate``, so later saves pile up into one
    group commit; it records the actors of each transaction."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def save(self, snapshots: Sequence[Snapshot]) -> None:
        if not self.entered.is_set():
            self.entered.set()
            if not self.gate.wait(20):
                raise AssertionError("the gate was never opened")
        self.batches.append([s.actor for s in snapshots])
        self.inner.save(snapshots)

    def load(self, system: str, actor: str, revision: int = 0) -> Snapshot | None:
        return self.inner.load(system, actor, revision)

    def load_at(self, system: str, actor: str, when: float) -> Snapshot | None:
        return self.inner.load_at(system, actor, when)

    def revisions(self, system: str, actor: str) -> list[RevisionInfo]:
        return self.inner.revisions(system, actor)

    def actors(self, system: str) -> list[str]:
        return self.inner.actors(system)

    def fork(self, system: str, new_system: str, at: float | None = None) -> int:
        return self.inner.fork(system, new_system, at)

    def close(self) -> None:
        self.inner.close()


class Errors:
    """What the persister reported through ``on_error``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, BaseException]] = []
        self.lock = threading.Lock()

    def __call__(self, save: Save, error: BaseException) -> None:
        with self.lock:
            self.seen.append((save.actor_id.name, error))


def save_of(actor: str, revision: int, state: object, *, durable: bool = False) -> Save:
    return Save(ActorId(actor, "sys"), actor, revision, state, {}, Status.ACTIVATED, durable)


def stored(store: Store, actor: str) -> object:
    row = store.load("sys", actor)
    return None if row is None else payloads.decode(row.type_url, row.data)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Persister, GatedStore, Errors]]:
    store = GatedStore(SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}"))
    errors = Errors()
    persister = Persister(store, "sys", ManualClock(), errors, retry_s=0.05)
    try:
        yield persister, store, errors
    finally:
        store.gate.set()
        persister.close()


def pile_up(persister: Persister, store: GatedStore, *saves: Save) -> None:
    """Hold the writer in a first transaction while ``saves`` queue behind it."""
    persister.save(save_of("first", 1, {"v": 0}))
    assert store.entered.wait(10)
    for save in saves:
        persister.save(save)


def test_conflict_of_one_actor_leaves_the_others_in_a_group_commit_stored(
    gated: tuple[Persister, GatedStore, Errors],
) -> None:
    persister, store, errors = gated
    store.inner.save([Snapshot("sys", "taken", 5, "t", b"someone else")])
    pile_up(persister, store, save_of("taken", 5, {"mine": 1}), save_of("fine", 1, {"v": 1}))
    store.gate.set()
    persister.flush()
    assert ["taken", "fine"] in store.batches  # they met in one transaction
    assert stored(store, "fine") == {"v": 1}
    assert [(name, type(e)) for name, e in errors.seen] == [("taken", ConflictError)]


def test_unencodable_state_is_reported_once_and_never_blocks_others(
    gated: tuple[Persister, GatedStore, Errors],
) -> None:
    persister, store, errors = gated
    pile_up(persister, store, save_of("bad", 1, {1, 2}), save_of("good", 1, [1, 2]))
    store.gate.set()
    persister.flush()
    assert stored(store, "good") == [1, 2]
    assert [name for name, _ in errors.seen] == ["bad"]
    assert "cannot be saved" in str(errors.seen[0][1])
    assert persister.pending == 0  # dropped, not retried forever


def test_durable_caller_gets_the_error_of_its_own_actor(
    gated: tuple[Persister, GatedStore, Errors],
) -> None:
    persister, store, _ = gated
    store.inner.save([Snapshot("sys", "taken", 5, "t", b"someone else")])
    pile_up(persister, store)
    outcome: list[BaseException | None] = []

    def durable(actor: str, revision: int) -> None:
        try:
            persister.save(save_of(actor, revision, {"v": 1}, durable=True))
            outcome.append(None)
        except StoreError as exc:
            outcome.append(exc)

    callers = [threading.Thread(target=durable, args=a) for a in (("taken", 3), ("ok", 1))]
    for caller in callers:
        caller.start()
    store.gate.set()
    for caller in callers:
        caller.join(10)
    errors = [e for e in outcome if e is not None]
    assert len(outcome) == 2 and len(errors) == 1
    assert isinstance(errors[0], ConflictError) and errors[0].actor == "taken"
    assert stored(store, "ok") == {"v": 1}


def test_actor_is_fenced_after_a_conflict_until_it_is_loaded_again(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}")
    persister = Persister(store, "sys", ManualClock(), Errors())
    try:
        persister.save(save_of("a", 1, {"v": 1}, durable=True))
        store.save([Snapshot("sys", "a", 2, *payloads.encode({"v": 20}))])
        with pytest.raises(ConflictError, match="already has revision 2"):
            persister.save(save_of("a", 2, {"v": 2}, durable=True))
        with pytest.raises(ConflictError, match="stale"):
            persister.save(save_of("a", 3, {"v": 3}, durable=True))  # would have won silently
        loaded = persister.load(Load(ActorId("a", "sys"), "a"))
        assert loaded is not None and loaded[2] == 2
        persister.save(save_of("a", 3, {"v": 21}, durable=True))
        assert [r.revision for r in store.revisions("sys", "a")] == [1, 2, 3]
    finally:
        persister.close()


def test_store_wide_failure_names_the_callers_actor(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    SQLiteStore(f"sqlite:///{db}").close()
    read_only = SQLiteStore(f"sqlite:///{db}?mode=ro")  # SQLite's own read-only open
    persister = Persister(read_only, "sys", ManualClock(), Errors())
    try:
        with pytest.raises(StoreError, match=r"'mine'.*read-only") as caught:
            persister.save(save_of("mine", 1, {"v": 1}, durable=True))
        assert caught.value.actor == "mine"
    finally:
        persister.close()
