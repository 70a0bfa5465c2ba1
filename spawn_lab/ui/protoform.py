"""A message composer form generated from an action's protobuf request type.

When the selected actor is served from a proto service (``%%proto``), each rpc has a request
message: the composer then shows one widget per field (numbers, text, a check box, an enum
drop-down; JSON for nested and repeated fields) instead of a free JSON payload, and builds the
message with protobuf's JSON mapping, so a wrong value is refused with the field's name.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ("ProtoForm", "request_type")

_INTS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOATS = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}


def request_type(service_actor: str, action: str) -> type[Message] | None:
    """The request message of rpc ``action`` of the proto service named ``service_actor``.

    None when no proto was compiled in this process (the registry is never imported for it)
    or the actor is not a proto service.
    """
    registry = sys.modules.get("spawn_lab.protobuf.registry")
    if registry is None:
        return None
    service = registry.default_registry().index.actors.get(service_actor)
    method = service.methods.get(action) if service is not None else None
    return method.input if method is not None else None


class ProtoForm:
    """One widget per field of ``message_type``; :meth:`message` builds the request."""

    def __init__(self, message_type: type[Message]) -> None:
        import ipywidgets as w

        self.message_type = message_type
        self.fields: dict[str, Any] = {}
        for field in message_type.DESCRIPTOR.fields:
            self.fields[field.name] = _widget(w, field)
        title = w.HTML(f"<span style='font-size:12px'>{message_type.DESCRIPTOR.full_name}</span>")
        self.widget = w.VBox([title, *self.fields.values()])

    def message(self) -> Message:
        """The request built from the widgets; a bad value names its field."""
        values: dict[str, Any] = {}
        for field in self.message_type.DESCRIPTOR.fields:
            raw = self.fields[field.name].value
            if _is_json(field):
                if str(raw).strip():
                    try:
                        values[field.name] = json.loads(raw)
                    except json.JSONDecodeError as exc:
                        raise ValueError(
                            f"field {field.name!r} is not valid JSON: {exc.msg}"
                        ) from None
            elif raw not in ("", None):
                values[field.name] = raw
        try:
            return json_format.ParseDict(values, self.message_type())
        except json_format.ParseError as exc:
            raise ValueError(f"{self.message_type.DESCRIPTOR.name}: {exc}") from None


def _is_json(field: Any) -> bool:
    return bool(field.is_repeated) or field.type == FieldDescriptor.TYPE_MESSAGE


def _widget(w: Any, field: Any) -> Any:
    wide = w.Layout(width="98%")
    if _is_json(field):
        return w.Text(description=field.name, placeholder="JSON", layout=wide)
    if field.type in _INTS:
        return w.IntText(description=field.name, layout=wide)
    if field.type in _FLOATS:
        return w.FloatText(description=field.name, layout=wide)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return w.Checkbox(description=field.name, value=False)
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = [value.name for value in field.enum_type.values]
        return w.Dropdown(description=field.name, options=names, value=names[0], layout=wide)
    return w.Text(description=field.name, layout=wide)
