"""The in-memory store: the contract with nothing underneath, for tests and throwaway systems."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from spawn_lab.core.errors import ConflictError
from spawn_lab.stores.base import RevisionInfo, Snapshot, Store
from spawn_lab.stores.tables import ProjectionTables

__all__ = ("MemoryStore",)


class MemoryStore(Store):
    """Full revision history in dicts, behind one lock.

    Projection tables live in a private in-memory SQLite database, made on first use, so view
    queries are real SQL here too and behave as they do on a SQLite file. Like the rows, it
    lives as long as the store object (``close`` keeps both, as it always has).
    """

    url = "memory://"

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[Snapshot]] = {}
        self._lock = threading.Lock()
        self._tables: ProjectionTables | None = None

    def projection_tables(self) -> ProjectionTables:
        with self._lock:
            if self._tables is None:
                self._tables = ProjectionTables.in_memory("memory store (in-memory SQLite)")
            return self._tables

    def save(self, snapshots: Sequence[Snapshot]) -> None:
        with self._lock:
            staged: dict[tuple[str, str], list[Snapshot]] = {}
            for snap in snapshots:
                key = (snap.system, snap.actor)
                history = staged.setdefault(key, list(self._rows.get(key, ())))
                latest = history[-1] if history else None
                if latest is not None and snap.revision <= latest.revision:
                    same = snap.revision == latest.revision and snap.data == latest.data
                    if not same:
                        raise ConflictError(
                            f"actor {snap.actor!r} already has revision {latest.revision} "
                            f"(tried to save {snap.revision})",
                            actor=snap.actor,
                        )
                    history[-1] = replace(latest, status=snap.status, tags=dict(snap.tags))
                    continue
                history.append(snap)
            self._rows.update(staged)

    def load(self, system: str, actor: str, revision: int = 0) -> Snapshot | None:
        history = self._rows.get((system, actor))
        if not history:
            return None
        if revision <= 0:
            return history[-1]
        return next((s for s in history if s.revision == revision), None)

    def load_at(self, system: str, actor: str, when: float) -> Snapshot | None:
        found = None
        for snap in self._rows.get((system, actor), ()):
            if snap.timestamp <= when:
                found = snap
        return found

    def revisions(self, system: str, actor: str) -> list[RevisionInfo]:
        return [
            RevisionInfo(s.revision, s.status, s.timestamp, s.type_url)
            for s in self._rows.get((system, actor), ())
        ]

    def actors(self, system: str) -> list[str]:
        return sorted(
            actor for (sys_name, actor), rows in self._rows.items() if sys_name == system and rows
        )

    def fork(self, system: str, new_system: str, at: float | None = None) -> int:
        with self._lock:
            if any(sys_name == new_system and rows for (sys_name, _), rows in self._rows.items()):
                raise ConflictError(
                    f"cannot fork system {system!r} into {new_system!r}: {new_system!r} already "
                    "has stored state, and forking never rewrites history"
                )
            copied = 0
            for (sys_name, actor), rows in list(self._rows.items()):
                if sys_name != system:
                    continue
                kept = [
                    replace(r, system=new_system) for r in rows if at is None or r.timestamp <= at
                ]
                if kept:
                    self._rows[(new_system, actor)] = kept
                    copied += 1
            return copied
