"""Projection tables and views (§8.4, §8.5): where PROJECTION actors' states become SQL rows.

After every non-view action that changes a PROJECTION actor's state, the engine emits an
``Upsert``; here the state becomes a row of the actor's table (see
:mod:`spawn_lab.stores.tables` for the table layout): one column per protobuf field (types per
§8.4) or per JSON key, keyed by the field marked ``(spawn.actors.actor_id)`` (else a field or key
named ``id``, else the projection actor's own name, so a projection without a key keeps one row).
A key that is empty falls back to the projection's name too.

View actions (``ViewSpec``) run their SQL over the table and never call a handler: parameters
come from the request payload's fields (a protobuf message or a dict), the page from the
``page``/``page_size`` metadata, and the rows go into the ``map_to`` field of the view's output
message (or ``{map_to: rows}`` for JSON).

The tables are the store's (real SQL on SQLite and PostgreSQL, an in-memory SQLite database for
the memory store); without a store they live in a private in-memory SQLite database. Upserts
are staged in engine order while the system lock is held (:meth:`Projections.stage`) and written
in that order; reads and views write what is staged first, so they never miss a state change the
engine has already made. A failed upsert never breaks the driver: it is reported to
``on_error`` (or logged) and retried later, since the latest state of a row is all that matters.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from spawn_lab.core.effects import Run, Upsert
from spawn_lab.core.errors import PayloadError, StoreError
from spawn_lab.core.model import NOOP, ActorDefinition, ViewSpec
from spawn_lab.stores.base import Store
from spawn_lab.stores.tables import (
    TIMESTAMP_COLUMNS,
    Column,
    ColumnType,
    ProjectionTables,
    TableSpec,
    snake_case,
)

__all__ = ("Projections", "table_of")

_log = logging.getLogger("spawn_lab.projections")
_SURROGATE = "id"
_TYPE_URL_PREFIX = "type.googleapis.com/"

_SCALAR_TYPES: dict[int, ColumnType] = {
    FieldDescriptor.TYPE_INT32: ColumnType.INT32,
    FieldDescriptor.TYPE_SINT32: ColumnType.INT32,
    FieldDescriptor.TYPE_SFIXED32: ColumnType.INT32,
    # unsigned 32-bit values overflow a 32-bit signed column; 64-bit ones may overflow BIGINT
    FieldDescriptor.TYPE_UINT32: ColumnType.INT64,
    FieldDescriptor.TYPE_FIXED32: ColumnType.INT64,
    FieldDescriptor.TYPE_INT64: ColumnType.INT64,
    FieldDescriptor.TYPE_SINT64: ColumnType.INT64,
    FieldDescriptor.TYPE_SFIXED64: ColumnType.INT64,
    FieldDescriptor.TYPE_UINT64: ColumnType.INT64,
    FieldDescriptor.TYPE_FIXED64: ColumnType.INT64,
    FieldDescriptor.TYPE_FLOAT: ColumnType.FLOAT,
    FieldDescriptor.TYPE_DOUBLE: ColumnType.DOUBLE,
    FieldDescriptor.TYPE_BOOL: ColumnType.BOOL,
    FieldDescriptor.TYPE_STRING: ColumnType.TEXT,
    FieldDescriptor.TYPE_BYTES: ColumnType.BYTES,
    FieldDescriptor.TYPE_ENUM: ColumnType.ENUM,
}


# -- states as rows -------------------------------------------------------------------------------


def _flag(field: FieldDescriptor, name: str) -> bool:
    """True if ``field`` carries the Spawn field option ``name`` (``actor_id``, ``searchable``).

    Messages compiled in a cell live in their own descriptor pool; if their options do not
    answer for the default pool's extension, they are read again through it.
    """
    from spawn_lab.protocol.spawn.actors import extensions_pb2

    extension: Any = getattr(extensions_pb2, name)
    options: Any = field.GetOptions()
    try:
        if options.HasExtension(extension):
            return bool(options.Extensions[extension])
    except (KeyError, TypeError):
        pass
    reparsed: Any = descriptor_pb2.FieldOptions.FromString(options.SerializeToString())
    return bool(reparsed.HasExtension(extension) and reparsed.Extensions[extension])


class _MessageShape:
    """How one message type maps onto a table: its columns, key and per-field readers."""

    __slots__ = ("columns", "fields", "key", "surrogate")

    def __init__(self, descriptor: Any) -> None:
        columns: list[Column] = []
        fields: list[tuple[str, FieldDescriptor, ColumnType]] = []
        key = ""
        for fd in descriptor.fields:
            name = snake_case(fd.name)
            if name in TIMESTAMP_COLUMNS:
                continue  # §8.4: the table's own timestamps replace them
            kind = (
                ColumnType.JSON
                if fd.is_repeated or fd.type == FieldDescriptor.TYPE_MESSAGE
                else _SCALAR_TYPES[fd.type]
            )
            columns.append(Column(name, kind, _flag(fd, "searchable")))
            fields.append((name, fd, kind))
            if not key and _flag(fd, "actor_id"):
                key = name
        names = {c.name for c in columns}
        if not key and _SURROGATE in names:
            key = _SURROGATE
        self.surrogate = not key
        if self.surrogate:
            columns.insert(0, Column(_SURROGATE, ColumnType.TEXT))
            key = _SURROGATE
        self.columns = tuple(columns)
        self.fields = tuple(fields)
        self.key = key

    def row(self, message: Message) -> dict[str, Any]:
        row: dict[str, Any] = {}
        as_json: dict[str, Any] | None = None
        for name, fd, kind in self.fields:
            if kind is ColumnType.JSON:
                if as_json is None:
                    as_json = json_format.MessageToDict(
                        message,
                        preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True,
                    )
                row[name] = as_json.get(fd.name)
            elif fd.has_presence and not message.HasField(fd.name):
                row[name] = None  # §8.4: singular fields are NULL-able; unset means NULL
            elif kind is ColumnType.ENUM:
                number = getattr(message, fd.name)
                value = fd.enum_type.values_by_number.get(number) if fd.enum_type else None
                row[name] = value.name if value is not None else str(number)
            else:
                row[name] = getattr(message, fd.name)
        return row


_shapes: dict[Any, _MessageShape] = {}  # by descriptor (generated or upb), never by name
_shapes_lock = threading.Lock()


def _shape_of(descriptor: Any) -> _MessageShape:
    shape = _shapes.get(descriptor)
    if shape is None:
        shape = _MessageShape(descriptor)
        with _shapes_lock:
            _shapes[descriptor] = shape
    return shape


def _json_type(value: object) -> ColumnType:
    if isinstance(value, bool):
        return ColumnType.BOOL
    if isinstance(value, int):
        return ColumnType.INT64
    if isinstance(value, float):
        return ColumnType.DOUBLE
    if isinstance(value, str):
        return ColumnType.TEXT
    if isinstance(value, bytes):
        return ColumnType.BYTES
    return ColumnType.JSON  # objects, lists and null (a null column can hold anything later)


def table_of(state: object, projection: str, fallback_key: str) -> tuple[TableSpec, dict[str, Any]]:
    """The table a state needs and the row it becomes (see the module docstring for keys)."""
    if isinstance(state, Message):
        shape = _shape_of(state.DESCRIPTOR)
        row = shape.row(state)
        columns, key = shape.columns, shape.key
    else:
        columns, row = _json_columns(state, projection)
        key = _SURROGATE
    if row.get(key) in (None, ""):
        row[key] = fallback_key
    return TableSpec(projection, columns, key), row


def _json_columns(state: object, projection: str) -> tuple[tuple[Column, ...], dict[str, Any]]:
    """Columns from a JSON object's keys (snake_case); any other value is one JSON column."""
    if isinstance(state, Mapping):
        items = [(str(k), v) for k, v in state.items()]
    else:
        items = [("value", None if state is NOOP else state)]
    row: dict[str, Any] = {}
    types: dict[str, ColumnType] = {}
    origin: dict[str, str] = {}
    for raw, value in items:
        name = snake_case(raw)
        if name in TIMESTAMP_COLUMNS:
            continue
        if name in origin:
            raise PayloadError(
                f"projection {projection!r}: keys {origin[name]!r} and {raw!r} both become "
                f"the column {name!r}"
            )
        origin[name], row[name] = raw, value
        types[name] = _json_type(value) if isinstance(state, Mapping) else ColumnType.JSON
    if row.get(_SURROGATE) is None:  # no id, or a null one: the projection's name, as text
        types[_SURROGATE] = ColumnType.TEXT
    return tuple(Column(n, t) for n, t in types.items()), row


# -- view requests and replies -----------------------------------------------------------------


def _params_of(payload: object) -> Mapping[str, Any]:
    """A view request's fields as query parameters: a message's fields, or a dict's entries."""
    if payload is NOOP or payload is None:
        return {}
    if isinstance(payload, Mapping):
        return {str(k): v for k, v in payload.items()}
    if isinstance(payload, Message):
        shape = _shape_of(payload.DESCRIPTOR)
        row = shape.row(payload)
        params = {fd.name: row[name] for name, fd, _ in shape.fields}
        params.update(row)  # snake_case names too, as the columns are called
        return params
    raise PayloadError(
        f"a view takes a protobuf message, a dict or no payload, not {type(payload).__name__}"
    )


def _positive(metadata: Mapping[str, str], key: str, default: int) -> int:
    raw = metadata.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise PayloadError(f"metadata {key!r} must be a positive integer, got {raw!r}")
    return value


def _message_class(type_name: str) -> type[Message] | None:
    """The class of a message type by full name: generated, imported or compiled in a cell."""
    from spawn_lab.protocol import payloads

    # payloads' lookup also sees the types a notebook compiled with compile_proto (§9)
    return payloads.message_class(type_name)


def _element(row: Mapping[str, Any], element: Any) -> dict[str, Any]:
    """A result row in the protobuf-JSON form of ``element``: matching columns only."""
    fields = {snake_case(fd.name): fd for fd in element.fields}
    fields.update({fd.name: fd for fd in element.fields})
    out: dict[str, Any] = {}
    for column, value in row.items():
        fd = fields.get(column)
        if fd is None or value is None:
            continue
        if fd.type == FieldDescriptor.TYPE_BYTES and isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif fd.type == FieldDescriptor.TYPE_BOOL and isinstance(value, int):
            value = bool(value)
        out[fd.name] = value
    return out


def _reply(view: ViewSpec, action: str, rows: list[dict[str, Any]]) -> object:
    """The view's answer: its output message with ``map_to`` filled, or JSON."""
    if not view.output_type:
        return {view.map_to: rows} if view.map_to else rows
    cls = _message_class(view.output_type)
    if cls is None:
        raise PayloadError(
            f"view {action!r}: output type {view.output_type!r} is not a known message type "
            "(import or compile its .proto first)"
        )
    output = cls()
    fd = cls.DESCRIPTOR.fields_by_name.get(view.map_to)
    if fd is None or not fd.is_repeated:
        raise PayloadError(
            f"view {action!r}: map_to {view.map_to!r} is not a repeated field of "
            f"{cls.DESCRIPTOR.full_name}"
        )
    target: Any = getattr(output, view.map_to)
    for i, row in enumerate(rows):
        try:
            if fd.message_type is not None:
                json_format.ParseDict(
                    _element(row, fd.message_type), target.add(), ignore_unknown_fields=True
                )
            elif row:
                target.append(next(iter(row.values())))
        except (json_format.ParseError, TypeError, ValueError) as exc:
            raise PayloadError(
                f"view {action!r}: row {i} does not fit {view.map_to!r} of "
                f"{cls.DESCRIPTOR.full_name}: {exc}"
            ) from exc
    return output


# -- the runtime's projections ------------------------------------------------------------------


class Projections:
    """The projection tables of one system, on its store's database (§8.4, §8.5).

    ``on_error(upsert, error)`` hears of upserts that failed (they are retried before the next
    one); without it they are logged to ``spawn_lab.projections``.
    """

    def __init__(
        self,
        store: Store | None = None,
        system: str = "",
        *,
        on_error: Callable[[Upsert, BaseException], None] | None = None,
    ) -> None:
        tables = store.projection_tables() if store is not None else None
        self.tables = tables if tables is not None else ProjectionTables.in_memory()
        self.store = store
        self.system = system
        self._on_error = on_error
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Upsert] = {}
        self._ready: set[str] = set()
        self._keys: dict[str, str] = {}
        self._staged: deque[Upsert] = deque()
        self._staging = False
        self._write_lock = threading.Lock()  # one writer at a time keeps upserts in order

    @staticmethod
    def table(actor: str) -> str:
        """The snake_case name of a projection's table, as view queries write it."""
        return snake_case(actor)

    def stage(self, effects: Iterable[object]) -> None:
        """Queue the upserts among ``effects``, in engine order; call with the system lock held.

        The driver performs effects after it releases the lock, so without this a reader (or
        ``run_until_idle``) could look before an upsert lands, and two threads could write one
        row's states in the wrong order. Staged upserts are written in order by whichever
        thread comes first: the one performing them, or a reader that needs them.
        """
        for effect in effects:
            if type(effect) is Upsert:
                self._staged.append(effect)
                self._staging = True

    def upsert(self, upsert: Upsert) -> None:
        """Perform an ``Upsert`` effect; never raises (the driver cannot wait for a retry)."""
        if self._staging:
            self._drain()
        else:
            with self._write_lock:
                self._retry_pending()
                self._write(upsert)

    def _drain(self) -> None:
        """Write every staged upsert, oldest first (after the ones that failed before)."""
        with self._write_lock:
            self._retry_pending()
            while True:
                try:
                    effect = self._staged.popleft()
                except IndexError:
                    return
                self._write(effect)

    def _retry_pending(self) -> None:
        with self._lock:
            retry = list(self._pending.values())
            self._pending.clear()
        for effect in retry:
            self._write(effect)

    def _write(self, upsert: Upsert) -> None:
        """Write one upsert. A database failure queues it for a retry; a state that cannot
        become a row (bad names, values that are not JSON) is only reported."""
        actor = upsert.actor_id
        projection = self.table(actor.parent or actor.name)
        key = actor.name
        try:
            spec, row = table_of(upsert.state, projection, actor.name)
            key = str(row[spec.key])
            clear = isinstance(upsert.state, Mapping)
            self.tables.upsert(spec, self.system, row, clear_missing=clear)
            with self._lock:
                self._ready.add(projection)
                self._keys[projection] = spec.key
        except Exception as exc:  # the driver performs this: nothing may escape into it
            if isinstance(exc, StoreError):
                with self._lock:
                    self._pending[(projection, key)] = upsert  # the latest state of a row wins
            if self._on_error is not None:
                self._on_error(upsert, exc)
            else:
                _log.error("projection %s: upsert failed: %s", actor.name, exc)

    def flush(self) -> int:
        """Write what is staged and retry what failed; return how many upserts still fail."""
        self._drain()
        with self._lock:
            return len(self._pending)

    def rows(self, projection: str) -> list[dict[str, Any]]:
        """The rows of a projection's table in this system, ordered by key, without timestamps."""
        table = self.table(projection)
        self._drain()
        found = self.tables.rows(table, self.system)
        with self._lock:
            key = self._keys.get(table, _SURROGATE)
        clean = [{k: v for k, v in r.items() if k not in TIMESTAMP_COLUMNS} for r in found]
        return sorted(clean, key=lambda r: str(r.get(key)))

    def run_view(self, run: Run) -> object:
        """Answer a view action from the table; the actor's handlers are never called (§8.5)."""
        inv = run.invocation
        view = run.definition.views[inv.action]
        projection = self.table(run.actor_id.parent or run.actor_id.name)
        self._drain()
        self._prepare(projection, run)
        page = _positive(inv.metadata, "page", 1)
        size = _positive(inv.metadata, "page_size", view.page_size if view.page_size > 0 else 10)
        rows = self.tables.view(
            projection,
            self.system,
            view.query,
            _params_of(inv.payload),
            page=page,
            page_size=size,
        )
        return _reply(view, inv.action, rows)

    def _prepare(self, projection: str, run: Run) -> None:
        """Make sure the table exists before a view reads it (a view may come before any fact)."""
        with self._lock:
            if projection in self._ready:
                return
        if not self.tables.columns(projection):
            state = _sample_state(run.state, run.definition)
            spec, _ = table_of(state, projection, run.actor_id.name)
            self.tables.ensure(spec)
        with self._lock:
            self._ready.add(projection)


def _sample_state(state: object, definition: ActorDefinition) -> object:
    """A state to shape a table from: the current one, the initial one, or the declared type."""
    for candidate in (state, definition.initial_state):
        if isinstance(candidate, Message) or (isinstance(candidate, Mapping) and candidate):
            return candidate
    if definition.settings.state_type:
        cls = _message_class(definition.settings.state_type)
        if cls is not None:
            return cls()
    return {}
