"""Revisions, restore, fork and point-in-time reads through the ActorSystem (issue 3 §3)."""

from __future__ import annotations

import pytest

import spawn_lab as sl
from spawn_lab.core.model import ProjectionSubject
from spawn_lab.stores.memory import MemoryStore


def counter() -> sl.Actor:
    actor = sl.Actor("counter", state=0)

    @actor.action
    def add(ctx, n):
        return sl.Value(ctx.state + n, state=ctx.state + n, checkpoint=True)

    return actor


def test_revisions_restore_and_state_at() -> None:
    with sl.ActorSystem("tt", clock=sl.ManualClock()) as system:
        ref = system.register(counter())
        for n in (1, 2, 3):
            ref.ask("add", n)
            system.advance(1)
        history = system.revisions("counter")
        assert history.numbers == [1, 2, 3]
        assert [system.state_at("counter", revision=r) for r in (1, 2, 3)] == [1, 3, 6]
        assert system.state_at("counter", when=history[1].timestamp) == 3
        assert system.restore("counter", 1) == 4
        assert ref.state == 1
        assert system.revisions("counter").numbers == [1, 2, 3, 4]
        assert ref.ask("add", 10) == 11
        assert "Revisions of counter" in history._repr_html_()


def test_restore_unknown_revision_names_it() -> None:
    with sl.ActorSystem("tt2") as system:
        system.register(counter()).ask("add", 1)
        with pytest.raises(sl.ActorNotFoundError, match="no stored revision 9"):
            system.restore("counter", 9)


def test_fork_copies_history_up_to_a_point_and_diverges() -> None:
    store = MemoryStore()
    with sl.ActorSystem("main", store=store, clock=sl.ManualClock()) as system:
        ref = system.register(counter())
        ref.ask("add", 1)
        system.advance(1)
        cut = system.revisions("counter")[-1].timestamp
        ref.ask("add", 100)
        with system.fork("what-if", at=cut) as fork:
            assert fork.state("counter") == 1
            assert fork.ask("counter", "add", 5) == 6
        assert ref.state == 101


def test_spawn_at_revision_starts_from_that_state() -> None:
    """§6.5 / §11 E47: spawning with a revision loads that revision on first activation."""
    store = MemoryStore()
    with sl.ActorSystem("rev", store=store) as system:
        tmpl = sl.Actor("acct", kind="unnamed", state=0, deactivate_timeout_ms=10_000)
        tmpl.action(
            lambda ctx, n: sl.Value(ctx.state + n, state=ctx.state + n, checkpoint=True), name="add"
        )
        system.register(tmpl)
        alice = system.spawn("alice", "acct")
        for n in (5, 6, 7):
            alice.ask("add", n)
        system.deactivate("alice")
        again = system.spawn("alice", "acct", revision=2)
        assert again.ask("get") == 11


def test_sourceable_actor_feeds_projection_in_order() -> None:
    """§8, checklist G51 (a sourceable actor's change becomes a fact with the new state; there is
    no NATS subject here) and intended D17: facts reach the projection in order, as rows."""
    with sl.ActorSystem("proj") as system:
        src = sl.Actor("account", kind="unnamed", state={"id": "", "balance": 0}, sourceable=True)

        @src.action
        def deposit(ctx, n):
            new = {"id": ctx.self.name, "balance": ctx.state["balance"] + n}
            return sl.Value(new["balance"], state=new)

        seen: list[tuple[str, int]] = []
        proj = sl.Actor(
            "balances",
            kind="projection",
            state={},
            subjects=[ProjectionSubject("account", "deposit", "on_deposit")],
        )

        @proj.action
        def on_deposit(ctx, fact):
            seen.append((ctx.caller.name, fact["balance"]))
            return sl.Value(state=fact)

        system.register(src)
        system.register(proj)
        for i in range(20):
            system.ask(f"acct-{i % 2}", "deposit", i, register_ref="account")
        system.run_until_idle()
        assert [b for name, b in seen if name == "acct-0"] == [0, 2, 6, 12, 20, 30, 42, 56, 72, 90]
        rows = system.projection_rows("balances")
        assert rows == [{"id": "acct-0", "balance": 90}, {"id": "acct-1", "balance": 100}]


def test_crash_loses_unsaved_state_and_reloads_last_snapshot() -> None:
    """Crash injection: state not yet stored is gone; the next message reloads the snapshot."""
    with sl.ActorSystem("crash", store="memory://") as system:
        actor = sl.Actor("acc", state=0, snapshot_interval_ms=None)
        actor.action(lambda ctx, n: sl.Value(ctx.state + n, state=ctx.state + n), name="add")
        actor.action(
            lambda ctx, n: sl.Value(ctx.state + n, state=ctx.state + n, checkpoint=True),
            name="save",
        )
        ref = system.register(actor)
        ref.ask("save", 5)
        ref.ask("add", 100)
        system.crash("acc")
        assert ref.ask("add", 1) == 6
        assert any(e.error == "crash injected" for e in system.events())


def test_reregistered_projection_gets_only_new_facts() -> None:
    """Re-running a projection's cell must not replay facts it has already folded."""
    with sl.ActorSystem("proj-again", store="memory://") as system:
        src = sl.Actor("src", state=0, sourceable=True)
        src.action(lambda ctx, n: sl.Value(state=ctx.state + n), name="add")
        system.register(src)

        def projection() -> sl.Actor:
            proj = sl.Actor(
                "total",
                kind="projection",
                state={"id": "t", "sum": 0},
                subjects=[ProjectionSubject("src", "add", "fold")],
            )
            proj.action(
                lambda ctx, fact: sl.Value(state={"id": "t", "sum": ctx.state["sum"] + 1}),
                name="fold",
            )
            return proj

        system.register(projection())
        for n in (1, 2, 3):
            system.ask("src", "add", n)
        system.run_until_idle()
        assert system.state("total") == {"id": "t", "sum": 3}
        system.register(projection())
        system.ask("src", "add", 4)
        system.run_until_idle()
        assert system.state("total") == {"id": "t", "sum": 4}


def test_spawn_at_old_revision_saves_after_the_latest() -> None:
    """§6.5: an instance spawned at an old revision starts from it and keeps saving, as new
    revisions after the latest one (history is never overwritten)."""
    with sl.ActorSystem("rewind", store="memory://") as system:
        tmpl = sl.Actor("acct", kind="unnamed", state=0)
        tmpl.action(
            lambda ctx, n: sl.Value(ctx.state + n, state=ctx.state + n, checkpoint=True),
            name="add",
        )
        system.register(tmpl)
        a = system.spawn("a", "acct")
        for n in (1, 2, 3):
            a.ask("add", n)
        system.deactivate("a")
        again = system.spawn("a", "acct", revision=2)
        assert again.ask("add", 10) == 13
        assert system.revisions("a").numbers == [1, 2, 3, 4]
        assert system.state_at("a", revision=4) == 13
        assert system.state_at("a", revision=3) == 6


def test_event_list_slices_keep_the_table() -> None:
    with sl.ActorSystem("slices", store="memory://") as system:
        system.register(sl.Actor("x", stateful=False))
        events = system.events()
        assert "trace events" in events[-1:]._repr_html_()
