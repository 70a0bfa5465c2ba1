"""State stores: where actor snapshots and their revision history live, chosen by URL."""

from spawn_lab.stores.base import RevisionInfo, Snapshot, Store, open_store

__all__ = ("RevisionInfo", "Snapshot", "Store", "open_store")
