"""The persister: write-behind snapshots, durable writes with group commit, and read-through loads.

Write-behind saves wait in memory until a writer thread stores them in one transaction. Loads
read through those pending saves first, so an actor that is deactivated and reactivated before
its last save lands still gets its newest state. Durable saves (``checkpoint``, deactivation on
close, durable mode) return only once stored; concurrent durable saves share one transaction
(group commit), so 100 callers pay for a handful of fsyncs, not 100.

One actor's bad save never sinks the others sharing its transaction: a state that cannot be
encoded, or a row the store rejects as a conflict, is taken out (its caller gets the error) and
the rest is committed. After a conflict the actor's copy here is stale (another writer moved it
on), so its later saves are refused too, until the actor is loaded again; otherwise the next
save, one revision higher, would silently overwrite the other writer's state.

A store-wide failure (full or read-only disk, lost server) keeps the write-behind saves queued
and retries them every ``retry_s``, so writing resumes by itself.

With a ``cipher`` (:mod:`spawn_lab.stores.crypto`), states are encrypted after encoding and
decrypted before decoding; stores only ever see ciphertext.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from spawn_lab.core.clock import Clock
from spawn_lab.core.effects import Load, Save
from spawn_lab.core.errors import ConflictError, CorruptStateError, PayloadError, StoreError
from spawn_lab.protocol import payloads
from spawn_lab.stores.base import Snapshot, Store
from spawn_lab.stores.crypto import KEY_ENV, StateCipher, is_encrypted

__all__ = ("Persister",)

Loaded = tuple[object, Mapping[str, str], int]


class _Batch:
    __slots__ = ("done", "error", "saves")

    def __init__(self, saves: list[Save]) -> None:
        self.saves = saves
        self.done = False
        self.error: BaseException | None = None


class Persister:
    """Turns the engine's Load and Save effects into store calls."""

    def __init__(
        self,
        store: Store,
        system: str,
        clock: Clock,
        on_error: Callable[[Save, BaseException], None],
        *,
        retry_s: float = 0.5,
        cipher: StateCipher | None = None,
    ) -> None:
        self.store = store
        self.cipher = cipher
        self.system = system
        self._clock = clock
        self._on_error = on_error
        self._retry_s = retry_s
        lock = threading.Lock()
        self._cv = threading.Condition(lock)  # durable callers wait here for their batch
        # the writer thread waits on its own condition (same lock), so a durable commit does
        # not wake it for nothing: that wake-up cost a context switch on every durable call
        self._wake = threading.Condition(lock)
        self._pending: list[Save] = []
        self._inflight: list[Save] = []
        self._stale: set[str] = set()  # actors another writer changed: not saved until reloaded
        self._batches: list[_Batch] = []
        self._committing = False
        self._closed = False
        self._writer = threading.Thread(
            target=self._write_behind, name=f"spawn-lab-writer-{system}", daemon=True
        )
        self._writer.start()

    # -- loads ---------------------------------------------------------------------------------

    def load(self, load: Load) -> Loaded | None:
        """The newest state of an actor (pending saves first), or revision ``load.revision``."""
        name = load.actor_id.name
        with self._cv:
            if name in self._stale:  # the engine starts over from what the store holds
                self._stale.discard(name)
                self._pending = [s for s in self._pending if s.actor_id.name != name]
        if load.revision <= 0:
            with self._cv:
                # saves being committed now or waiting are newer than the store; the highest
                # revision wins (a durable save can arrive after a later write-behind one)
                mine = [s for s in (*self._inflight, *self._pending) if s.actor_id.name == name]
                if mine:
                    save = max(mine, key=lambda s: s.revision)
                    return save.state, dict(save.tags), save.revision
        snap = self.store.load(self.system, name, load.revision)
        if load.revision > 0:
            latest = self.store.load(self.system, name)
            if snap is None:
                snap = latest  # §6.5: fall back to the latest
            elif latest is not None:  # rewound: go on numbering after the latest revision
                return self.decode(snap), dict(snap.tags), latest.revision
        if snap is None:
            return None
        return self.decode(snap), dict(snap.tags), snap.revision

    def decode(self, snap: Snapshot) -> object:
        """A stored row's state as a Python value; errors name the actor and revision."""
        type_url, data = snap.type_url, snap.data
        if is_encrypted(type_url):
            if self.cipher is None:
                raise CorruptStateError(
                    f"stored state of actor {snap.actor!r} (revision {snap.revision}) is "
                    f"encrypted; set {KEY_ENV} (or pass encryption_key=) to read it",
                    actor=snap.actor,
                )
            type_url, data = self.cipher.decrypt(snap.actor, snap.revision, type_url, data)
        try:
            return payloads.decode(type_url, data)
        except PayloadError as exc:
            raise CorruptStateError(
                f"stored state of actor {snap.actor!r} (revision {snap.revision}) cannot be "
                f"decoded: {exc}",
                actor=snap.actor,
            ) from exc

    # -- saves ---------------------------------------------------------------------------------

    def save(self, save: Save) -> None:
        """Queue a write-behind save, or store a durable one (with everything queued before it)."""
        if not save.durable:
            with self._cv:
                self._pending.append(save)
                self._wake.notify()
            return
        self._commit_with(_Batch([save]))

    def flush(self) -> None:
        """Store everything pending now (on close); raises a store-wide failure."""
        self._commit_with(_Batch([]))

    def _commit_with(self, batch: _Batch) -> None:
        """Join (or lead) a group commit; report write-behind saves it rejected; raise our error."""
        rejected: list[tuple[Save, BaseException]] = []
        with self._cv:
            self._batches.append(batch)
            while not batch.done:
                if self._committing:
                    self._cv.wait()
                    continue
                failed, _ = self._commit_locked()
                rejected += failed  # a store-wide failure is retried and reported by the writer
        for save, error in rejected:
            self._on_error(save, error)
        if batch.error is not None:
            raise batch.error

    def close(self, *, close_store: bool = True) -> None:
        """Flush, stop the writer and (if this system owns it) close the store."""
        try:
            self.flush()
        finally:
            with self._cv:
                self._closed = True
                self._wake.notify_all()
            self._writer.join(timeout=5)
            if close_store:
                self.store.close()

    @property
    def pending(self) -> int:
        """How many write-behind saves wait to be stored."""
        return len(self._pending)

    def _commit_locked(self) -> tuple[list[tuple[Save, BaseException]], StoreError | None]:
        """Commit every pending save and waiting durable batch in one transaction (lock held).

        Returns the write-behind saves left out for good (conflicts, unencodable states) with
        their errors, and the store-wide error, if any, that left the others queued.
        """
        self._committing = True
        batches, self._batches = self._batches, []
        pending, self._pending = self._pending, []
        # revision order per actor (stable otherwise): a durable save may have been handed
        # over after a later write-behind one of the same actor
        queued = pending + [s for b in batches for s in b.saves]
        first: dict[str, int] = {}
        for index, save in enumerate(queued):
            first.setdefault(save.actor_id.name, index)
        saves = sorted(queued, key=lambda s: (first[s.actor_id.name], s.revision))
        stale = set(self._stale)
        self._inflight = saves
        self._cv.release()
        try:
            rejected, error = self._store(saves, stale)
        finally:
            self._cv.acquire()
            self._committing = False
            self._inflight = []
        self._stale.update(n for n, e in rejected.items() if isinstance(e, ConflictError))
        failed: list[tuple[Save, BaseException]] = []
        for save in pending:
            name = save.actor_id.name
            if name in rejected and all(f[0].actor_id.name != name for f in failed):
                failed.append((save, rejected[name]))
        if error is not None:
            # keep write-behind saves for a retry: the disk may recover
            self._pending[:0] = [s for s in pending if s.actor_id.name not in rejected]
        for batch in batches:
            batch.error = _error_for(batch.saves, rejected, error)
            batch.done = True
        self._cv.notify_all()
        if self._pending:
            self._wake.notify()
        return failed, error

    def _store(
        self, saves: list[Save], stale: set[str]
    ) -> tuple[dict[str, StoreError], StoreError | None]:
        """Store what can be stored: ``(errors of the actors left out, a store-wide error)``."""
        rejected: dict[str, StoreError] = {}
        rows: list[Snapshot] = []
        wall = self._clock.wall()
        for save in saves:
            name = save.actor_id.name
            if name in stale:
                rejected.setdefault(name, _stale_error(name, save.revision))
                continue
            try:
                rows.append(self._row(save, wall))
            except StoreError as exc:
                rejected.setdefault(name, exc)
        while True:
            live = [r for r in rows if r.actor not in rejected]
            if not live:
                return rejected, None
            try:
                self.store.save(live)
                return rejected, None
            except (ConflictError, CorruptStateError) as exc:
                if exc.actor is None or not any(r.actor == exc.actor for r in live):
                    return rejected, exc
                rejected[exc.actor] = exc  # leave that actor out and commit the rest
            except StoreError as exc:
                return rejected, exc

    def _row(self, save: Save, wall: float) -> Snapshot:
        name = save.actor_id.name
        try:
            type_url, data = payloads.encode(save.state)
        except PayloadError as exc:
            raise StoreError(f"state of actor {name!r} cannot be saved: {exc}", actor=name) from exc
        if self.cipher is not None:
            type_url, data = self.cipher.encrypt(name, type_url, data)
        return Snapshot(
            system=self.system,
            actor=name,
            revision=save.revision,
            type_url=type_url,
            data=data,
            tags=dict(save.tags),
            status=save.status.value,
            parent=save.actor_id.parent,
            timestamp=wall,
        )

    def _write_behind(self) -> None:
        retry_at = 0.0  # after a store-wide failure, new saves do not hurry the next attempt
        with self._cv:
            while not self._closed:
                if not self._pending or self._committing:
                    self._wake.wait()
                    continue
                pause = retry_at - time.monotonic()
                if pause > 0:
                    self._wake.wait(pause)
                    continue
                first = self._pending[0]
                failed, error = self._commit_locked()
                if error is not None:
                    failed.insert(0, (first, error))
                if failed:
                    self._cv.release()
                    try:
                        for save, exc in failed:
                            self._on_error(save, exc)
                    finally:
                        self._cv.acquire()
                if error is not None:
                    retry_at = time.monotonic() + self._retry_s


def _error_for(
    saves: list[Save], rejected: Mapping[str, StoreError], error: StoreError | None
) -> StoreError | None:
    """The error a durable batch reports, naming its own actor. A flush (no saves) reports only a
    store-wide failure: actors left out were reported through ``on_error`` already."""
    if not saves:
        return error
    name = saves[0].actor_id.name
    if name in rejected:
        return rejected[name]
    if error is None or error.actor == name:
        return error
    wrapped = StoreError(
        f"state of actor {name!r} (revision {saves[0].revision}) was not saved: {error}",
        actor=name,
    )
    wrapped.__cause__ = error
    return wrapped


def _stale_error(name: str, revision: int) -> ConflictError:
    return ConflictError(
        f"actor {name!r} was changed by another writer, so its state here is stale: revision "
        f"{revision} was not saved, nor will later ones be until the actor is loaded again "
        "(deactivate it, or restart the system)",
        actor=name,
    )
