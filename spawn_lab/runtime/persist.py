"""The persister: write-behind snapshots, durable writes with group commit, and read-through loads.

Write-behind saves wait in memory until a writer thread stores them in one transaction. Loads
read through those pending saves first, so an actor that is deactivated and reactivated before
its last save lands still gets its newest state. Durable saves (``checkpoint``, deactivation on
close, durable mode) return only once stored; concurrent durable saves share one transaction
(group commit), so 100 callers pay for a handful of fsyncs, not 100.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from spawn_lab.core.clock import Clock
from spawn_lab.core.effects import Load, Save
from spawn_lab.core.errors import ConflictError, CorruptStateError, PayloadError, StoreError
from spawn_lab.protocol import payloads
from spawn_lab.stores.base import Snapshot, Store

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
    ) -> None:
        self.store = store
        self.system = system
        self._clock = clock
        self._on_error = on_error
        self._retry_s = retry_s
        self._cv = threading.Condition()
        self._pending: list[Save] = []
        self._batches: list[_Batch] = []
        self._committing = False
        self._closed = False
        self._writer = threading.Thread(target=self._write_behind, name=f"spawn-lab-writer-{system}", daemon=True)
        self._writer.start()

    # -- loads ---------------------------------------------------------------------------------

    def load(self, load: Load) -> Loaded | None:
        """The newest state of an actor (pending saves first), or revision ``load.revision``."""
        name = load.actor_id.name
        if load.revision <= 0:
            with self._cv:
                for save in reversed(self._pending):
                    if save.actor_id.name == name:
                        return save.state, dict(save.tags), save.revision
        snap = self.store.load(self.system, name, load.revision)
        if snap is None and load.revision > 0:
            snap = self.store.load(self.system, name)  # §6.5: fall back to the latest
        if snap is None:
            return None
        return self.decode(snap), dict(snap.tags), snap.revision

    def decode(self, snap: Snapshot) -> object:
        """A stored row's state as a Python value; errors name the actor and revision."""
        try:
            return payloads.decode(snap.type_url, snap.data)
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
                self._cv.notify_all()
            return
        batch = _Batch([save])
        with self._cv:
            self._batches.append(batch)
            while not batch.done:
                if self._committing:
                    self._cv.wait()
                    continue
                self._commit_locked()
        if batch.error is not None:
            raise batch.error

    def flush(self) -> None:
        """Store everything pending now (on close); raises the first failure."""
        batch = _Batch([])
        with self._cv:
            self._batches.append(batch)
            while not batch.done:
                if self._committing:
                    self._cv.wait()
                    continue
                self._commit_locked()
        if batch.error is not None:
            raise batch.error

    def close(self) -> None:
        """Flush, stop the writer and close the store."""
        try:
            self.flush()
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            self._writer.join(timeout=5)
            self.store.close()

    @property
    def pending(self) -> int:
        """How many write-behind saves wait to be stored."""
        return len(self._pending)

    def _commit_locked(self) -> BaseException | None:
        """Commit every pending save and waiting durable batch in one transaction (lock held)."""
        self._committing = True
        batches, self._batches = self._batches, []
        pending, self._pending = self._pending, []
        saves = pending + [s for b in batches for s in b.saves]
        self._cv.release()
        error: BaseException | None = None
        try:
            self._store(saves)
        except StoreError as exc:
            error = exc
        finally:
            self._cv.acquire()
            self._committing = False
        if error is not None and not isinstance(error, ConflictError | CorruptStateError):
            # keep write-behind saves for a retry: the disk may recover
            self._pending[:0] = pending
        for batch in batches:
            batch.error = error
            batch.done = True
        self._cv.notify_all()
        return error

    def _store(self, saves: list[Save]) -> None:
        if not saves:
            return
        wall = self._clock.wall()
        rows = []
        for save in saves:
            try:
                type_url, data = payloads.encode(save.state)
            except PayloadError as exc:
                raise StoreError(
                    f"state of actor {save.actor_id.name!r} cannot be saved: {exc}",
                    actor=save.actor_id.name,
                ) from exc
            rows.append(
                Snapshot(
                    system=self.system,
                    actor=save.actor_id.name,
                    revision=save.revision,
                    type_url=type_url,
                    data=data,
                    tags=dict(save.tags),
                    status=save.status.value,
                    parent=save.actor_id.parent,
                    timestamp=wall,
                )
            )
        self.store.save(rows)

    def _write_behind(self) -> None:
        with self._cv:
            while not self._closed:
                if not self._pending or self._committing:
                    self._cv.wait()
                    continue
                first = self._pending[0]
                error = self._commit_locked()
                if error is not None:
                    self._cv.release()
                    try:
                        self._on_error(first, error)
                    finally:
                        self._cv.acquire()
                    self._cv.wait(self._retry_s)
