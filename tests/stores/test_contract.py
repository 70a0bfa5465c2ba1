"""The store contract (spawn_lab/stores/base.py), point by point, on memory, SQLite, PostgreSQL."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from spawn_lab.core.errors import ConflictError, StoreError
from spawn_lab.stores.base import RevisionInfo, Snapshot

if TYPE_CHECKING:
    from conftest import StoreKit  # the ``kit`` fixture's type

pytestmark = pytest.mark.timeout(60)

JSON_URL = "type.googleapis.com/spawn.JSONType"


def snap(
    system: str,
    actor: str,
    revision: int,
    data: bytes = b"",
    *,
    at: float = 0.0,
    status: str = "ACTIVATED",
    tags: dict[str, str] | None = None,
    type_url: str = JSON_URL,
    parent: str = "",
) -> Snapshot:
    return Snapshot(
        system=system,
        actor=actor,
        revision=revision,
        type_url=type_url,
        data=data or f"state {revision}".encode(),
        tags=tags or {},
        status=status,
        parent=parent,
        timestamp=at or 1_700_000_000.0 + revision,
    )


# -- 1. full history, never rewritten ---------------------------------------------------------


def test_store_round_trips_every_field_of_a_row(kit: StoreKit) -> None:
    system = kit.system()
    row = Snapshot(
        system=system,
        actor="caf\u00e9 \u2615",
        revision=7,
        type_url="type.googleapis.com/acme.Thing",
        data=bytes(range(256)) + b"\x00tail",
        tags={"owner": "ana", "emoji": "\u2603", "empty": ""},
        status="DEACTIVATED",
        parent="template-1",
        timestamp=1_767_225_600.123456,
    )
    kit.store.save([row])
    assert kit.store.load(system, row.actor) == row
    assert kit.other_view().load(system, row.actor) == row


def test_store_keeps_every_revision_of_an_actor(kit: StoreKit) -> None:
    """Checklist E44, E45 and E46 in our numbering: every save is its own revision, all kept
    and loadable by number (upstream's Postgres history table, MariaDB system versioning)."""
    system = kit.system()
    for revision in (1, 2, 3):
        kit.store.save([snap(system, "a", revision)])
    assert [kit.store.load(system, "a", r).data for r in (1, 2, 3)] == [  # type: ignore[union-attr]
        b"state 1",
        b"state 2",
        b"state 3",
    ]


def test_store_restoring_an_old_revision_adds_a_new_one(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1, b"old")])
    kit.store.save([snap(system, "a", 2, b"new")])
    old = kit.store.load(system, "a", 1)
    assert old is not None
    kit.store.save([snap(system, "a", 3, old.data)])
    assert [r.revision for r in kit.store.revisions(system, "a")] == [1, 2, 3]
    assert kit.store.load(system, "a", 2).data == b"new"  # type: ignore[union-attr]
    assert kit.store.load(system, "a").data == b"old"  # type: ignore[union-attr]


# -- 2. atomic, durable, optimistic revision check --------------------------------------------


def test_save_is_visible_to_a_fresh_connection_when_it_returns(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1), snap(system, "b", 1)])
    view = kit.other_view()
    assert view.load(system, "a") == snap(system, "a", 1)
    assert view.load(system, "b") == snap(system, "b", 1)


def test_save_of_several_revisions_of_one_actor_in_one_batch_keeps_them_all(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1), snap(system, "a", 2), snap(system, "a", 5)])
    assert [r.revision for r in kit.store.revisions(system, "a")] == [1, 2, 5]


def test_save_with_a_conflict_anywhere_writes_nothing(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "b", 3)])
    with pytest.raises(ConflictError) as caught:
        kit.store.save([snap(system, "a", 1), snap(system, "c", 1), snap(system, "b", 2)])
    assert caught.value.actor == "b"
    assert kit.store.load(system, "a") is None
    assert kit.store.load(system, "c") is None
    assert kit.store.actors(system) == ["b"]


def test_save_of_an_older_revision_is_a_conflict_naming_the_actor(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "counter", 4)])
    with pytest.raises(
        ConflictError, match=r"'counter' already has revision 4 \(tried to save 3\)"
    ):
        kit.store.save([snap(system, "counter", 3)])
    assert [r.revision for r in kit.store.revisions(system, "counter")] == [4]


def test_save_of_the_same_revision_with_other_data_is_a_conflict(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 2, b"mine")])
    with pytest.raises(ConflictError) as caught:
        kit.store.save([snap(system, "a", 2, b"theirs")])
    assert isinstance(caught.value, StoreError)
    assert caught.value.actor == "a"
    assert kit.store.load(system, "a").data == b"mine"  # type: ignore[union-attr]


def test_save_of_a_revision_not_above_one_staged_in_the_same_batch_is_a_conflict(
    kit: StoreKit,
) -> None:
    system = kit.system()
    with pytest.raises(ConflictError):
        kit.store.save([snap(system, "a", 2), snap(system, "a", 1)])
    assert kit.store.revisions(system, "a") == []


def test_save_of_the_same_revision_and_data_updates_only_status_and_tags(kit: StoreKit) -> None:
    system = kit.system()
    first = snap(system, "a", 3, b"same", tags={"k": "1"}, at=100.0)
    kit.store.save([first])
    again = snap(system, "a", 3, b"same", status="DEACTIVATED", tags={"k": "2"}, at=200.0)
    kit.store.save([again])
    stored = kit.store.load(system, "a")
    assert stored is not None
    assert (stored.status, dict(stored.tags)) == ("DEACTIVATED", {"k": "2"})
    assert (stored.data, stored.timestamp, stored.revision) == (b"same", 100.0, 3)
    assert len(kit.store.revisions(system, "a")) == 1


def test_save_of_a_repeated_row_within_one_batch_updates_its_status(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1, b"x"), snap(system, "a", 1, b"x", status="UNKNOWN")])
    assert kit.store.load(system, "a").status == "UNKNOWN"  # type: ignore[union-attr]


def test_save_of_nothing_is_a_no_op(kit: StoreKit) -> None:
    kit.store.save([])
    assert kit.store.actors(kit.system()) == []


# -- 3. load and load_at ------------------------------------------------------------------------


def test_load_returns_the_latest_row_for_revision_zero(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1), snap(system, "a", 9)])
    assert kit.store.load(system, "a").revision == 9  # type: ignore[union-attr]
    assert kit.store.load(system, "a", 0).revision == 9  # type: ignore[union-attr]


def test_load_returns_exactly_the_revision_asked_for_or_none(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1), snap(system, "a", 3)])
    assert kit.store.load(system, "a", 1) == snap(system, "a", 1)
    assert kit.store.load(system, "a", 2) is None
    assert kit.store.load(system, "a", 4) is None


def test_load_of_an_unknown_actor_or_system_is_none(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 1)])
    assert kit.store.load(system, "nobody") is None
    assert kit.store.load(kit.system("other"), "a") is None


def test_load_at_returns_the_latest_row_saved_at_or_before_a_time(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", r, at=1000.0 + 10 * r) for r in (1, 2, 3)])
    assert kit.store.load_at(system, "a", 1005.0) is None
    assert kit.store.load_at(system, "a", 1010.0).revision == 1  # type: ignore[union-attr]
    assert kit.store.load_at(system, "a", 1029.9).revision == 2  # type: ignore[union-attr]
    assert kit.store.load_at(system, "a", 9e9).revision == 3  # type: ignore[union-attr]


# -- 4. revisions -------------------------------------------------------------------------------


def test_revisions_lists_every_revision_oldest_first_without_data(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "a", 2, at=50.0)])
    kit.store.save([snap(system, "a", 5, at=60.0, status="DEACTIVATED", type_url="t/x")])
    assert kit.store.revisions(system, "a") == [
        RevisionInfo(2, "ACTIVATED", 50.0, JSON_URL),
        RevisionInfo(5, "DEACTIVATED", 60.0, "t/x"),
    ]
    assert kit.store.revisions(system, "nobody") == []


# -- 5. actors ----------------------------------------------------------------------------------


def test_actors_lists_the_names_with_state_in_that_system_only(kit: StoreKit) -> None:
    system, other = kit.system(), kit.system("other")
    kit.store.save([snap(system, name, 1) for name in ("b", "a", "Z", "\u00e9")])
    kit.store.save([snap(other, "elsewhere", 1)])
    assert kit.store.actors(system) == ["Z", "a", "b", "\u00e9"]
    assert kit.store.actors(kit.system("empty")) == []


# -- 6. fork ------------------------------------------------------------------------------------


def test_fork_copies_every_actors_whole_history_into_the_new_system(kit: StoreKit) -> None:
    system, forked = kit.system(), kit.system("fork")
    kit.store.save([snap(system, "a", 1), snap(system, "a", 2), snap(system, "b", 7)])
    assert kit.store.fork(system, forked) == 2
    assert kit.store.revisions(forked, "a") == kit.store.revisions(system, "a")
    assert kit.store.load(forked, "b") == snap(forked, "b", 7)


def test_fork_at_a_time_copies_only_the_history_up_to_it(kit: StoreKit) -> None:
    system, forked = kit.system(), kit.system("fork")
    kit.store.save([snap(system, "a", r, at=100.0 * r) for r in (1, 2, 3)])
    kit.store.save([snap(system, "late", 1, at=1000.0)])
    assert kit.store.fork(system, forked, at=200.0) == 1
    assert [r.revision for r in kit.store.revisions(forked, "a")] == [1, 2]
    assert kit.store.actors(forked) == ["a"]
    assert kit.store.load_at(forked, "a", 250.0).revision == 2  # type: ignore[union-attr]


def test_fork_leaves_the_source_independent_of_the_copy(kit: StoreKit) -> None:
    system, forked = kit.system(), kit.system("fork")
    kit.store.save([snap(system, "a", 1)])
    kit.store.fork(system, forked)
    kit.store.save([snap(forked, "a", 2, b"only in the fork")])
    kit.store.save([snap(system, "a", 2, b"only in the source")])
    assert kit.store.load(system, "a").data == b"only in the source"  # type: ignore[union-attr]
    assert kit.store.load(forked, "a").data == b"only in the fork"  # type: ignore[union-attr]


def test_fork_before_any_state_copies_nothing(kit: StoreKit) -> None:
    system, forked = kit.system(), kit.system("fork")
    kit.store.save([snap(system, "a", 1, at=500.0)])
    assert kit.store.fork(system, forked, at=10.0) == 0
    assert kit.store.actors(forked) == []


def test_fork_into_a_system_that_has_state_is_a_conflict_and_rewrites_nothing(
    kit: StoreKit,
) -> None:
    system, forked = kit.system(), kit.system("fork")
    kit.store.save([snap(system, "a", 1, b"source")])
    kit.store.save([snap(forked, "a", 1, b"target")])
    with pytest.raises(ConflictError, match="already has stored state"):
        kit.store.fork(system, forked)
    assert kit.store.load(forked, "a").data == b"target"  # type: ignore[union-attr]


# -- 7. errors are StoreErrors ------------------------------------------------------------------


def test_conflict_errors_are_store_errors_naming_the_actor(kit: StoreKit) -> None:
    system = kit.system()
    kit.store.save([snap(system, "named", 1)])
    with pytest.raises(StoreError) as caught:
        kit.store.save([snap(system, "named", 1, b"different")])
    assert caught.value.actor == "named"
    assert "'named'" in str(caught.value)


def test_a_closed_store_raises_store_error_not_a_driver_error(sql_kit: StoreKit) -> None:
    store = sql_kit.other_view()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.load(sql_kit.system(), "a")
    with pytest.raises(StoreError, match="closed"):
        store.save([snap(sql_kit.system(), "a", 1)])


# -- 8. thread safety ---------------------------------------------------------------------------


def test_store_serves_many_threads_saving_and_loading_at_once(kit: StoreKit) -> None:
    system = kit.system()
    errors: list[BaseException] = []

    def work(actor: str) -> None:
        try:
            for revision in range(1, 31):
                kit.store.save([snap(system, actor, revision)])
                latest = kit.store.load(system, actor)
                if latest is None or latest.revision != revision:
                    raise AssertionError(f"{actor}: read {latest!r} after saving {revision}")
        except BaseException as exc:  # reported below, with the thread's actor
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    assert errors == []
    assert kit.store.actors(system) == [f"t{i}" for i in range(6)]
    assert all(len(kit.store.revisions(system, f"t{i}")) == 30 for i in range(6))


def test_store_lets_exactly_one_of_racing_writers_win_each_revision(kit: StoreKit) -> None:
    system = kit.system()
    won: list[tuple[int, int]] = []
    lost: list[ConflictError] = []
    barrier = threading.Barrier(4)

    def race(writer: int) -> None:
        for revision in range(1, 11):
            barrier.wait(timeout=20)
            try:
                kit.store.save([snap(system, "contested", revision, f"w{writer}".encode())])
                won.append((revision, writer))
            except ConflictError as exc:
                lost.append(exc)

    threads = [threading.Thread(target=race, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    assert sorted(r for r, _ in won) == list(range(1, 11))
    assert len(lost) == 30 and all(e.actor == "contested" for e in lost)
    for revision, writer in won:
        assert kit.store.load(system, "contested", revision).data == f"w{writer}".encode()  # type: ignore[union-attr]
