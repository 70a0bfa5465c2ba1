"""Projection tables and views (§8.4, §8.5): where PROJECTION actors' states are upserted.

Each PROJECTION actor has a table of rows, one per key. The key is the state's ``id`` field
(a protobuf field marked ``(spawn.actors.actor_id)``, or a JSON object's ``"id"``), so a
projection that folds facts from many source actors keeps one row per source. View actions
query these rows without calling the actor's handlers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from spawn_lab.core.effects import Run, Upsert
from spawn_lab.core.errors import InvocationError

__all__ = ("Projections", "row_of")


def _actor_id_field(message: Message) -> str:
    from spawn_lab.protocol.spawn.actors import extensions_pb2

    marker: Any = extensions_pb2.actor_id
    for field in message.DESCRIPTOR.fields:
        options = field.GetOptions()
        if options.HasExtension(marker) and options.Extensions[marker]:
            return field.name
    return "id"


def row_of(state: object, fallback_key: str) -> tuple[str, dict[str, Any]]:
    """The ``(key, row)`` a projection state becomes: protobuf fields or JSON keys as columns."""
    if isinstance(state, Message):
        row = MessageToDict(
            state, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        key_field = _actor_id_field(state)
    elif isinstance(state, Mapping):
        row = dict(state)
        key_field = "id"
    else:
        row = {"value": state}
        key_field = ""
    key = row.get(key_field) if key_field else None
    return (str(key) if key not in (None, "") else fallback_key), row


class Projections:
    """In-memory projection tables of one system, behind a lock."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def upsert(self, upsert: Upsert) -> None:
        key, row = row_of(upsert.state, upsert.actor_id.name)
        with self._lock:
            self._tables.setdefault(upsert.actor_id.name, {})[key] = row

    def rows(self, projection: str) -> list[dict[str, Any]]:
        """The rows of a projection's table, ordered by key."""
        with self._lock:
            table = self._tables.get(projection, {})
            return [dict(table[k]) for k in sorted(table)]

    def run_view(self, run: Run) -> Any:
        raise InvocationError(
            f"view {run.invocation.action!r} of {run.actor_id.name!r}: SQL views need the "
            "projection tables of a SQL store, which this build does not have yet"
        )
