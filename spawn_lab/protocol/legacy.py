"""Published SDKs that speak older Spawn protos: detect them, and decode them into today's model.

Appendix B of ``spawn-spec.md`` lists the drift. Old SDKs do not all differ the same way, so the
dialect of a registration is decided from two kinds of evidence together, never from one value:
what the bytes decode as (with today's protos and with the old ``Metadata.channel_group`` string),
and who sent them (``ServiceInfo`` library name and version). The rules, numbered as in
``docs/compat.md``:

L1  A ``Metadata.channel_group`` that is a plain string (the registration does not decode with
    today's protos, or decodes into a Channel with an empty topic or unknown fields, while the
    old form gives a non-empty string) becomes ``Channel(topic=string, action="receive")``.
L2  ``nodejs_sdk`` registrations use the old Kind numbers (ABSTRACT=1, SINGLETON=2) when an actor
    shows it: kind 1 whose ``id.parent`` is its own name (how that SDK marks ABSTRACT), kind 2
    with no parent (SINGLETON), or a string channel group. Newer releases of the same SDK mark an
    UNNAMED (2) template with ``parent == name``; evidence for both in one registration is an
    error. Other SDKs' kinds are today's (spawn-python-sdk declares NAMED=1, UNAMED=2).
L3  SDKs of the ``eigr.functions.protocol`` generation (spawn-python-sdk, nodejs_sdk, or any SDK
    caught by L1) get JSON values under ``type.googleapis.com/eigr.functions.protocol.JSONType``,
    as do SDKs whose registration itself packs JSON that way.
L4  Their ``Broadcast`` may name the action to run in the old field 2 (``action_name`` /
    ``command_name``); it is honoured (:func:`broadcast_action`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from spawn_lab.core.errors import ProtocolError, RegistrationError
from spawn_lab.core.model import Kind
from spawn_lab.protocol.payloads import JSON_TYPE_URL, LEGACY_JSON_TYPE_URL
from spawn_lab.protocol.spawn.actors import actor_pb2, protocol_pb2

__all__ = (
    "CURRENT",
    "NODE_SDK",
    "PYTHON_SDK",
    "SdkProfile",
    "broadcast_action",
    "decode_registration",
)

PYTHON_SDK: Final = "spawn-python-sdk"
NODE_SDK: Final = "nodejs_sdk"
#: Libraries of the old ``eigr.functions.protocol`` generation (L3, L4).
_OLD_GENERATION: Final = frozenset((PYTHON_SDK, NODE_SDK))
_OLD_NODE_KINDS: Final = {1: Kind.UNNAMED, 2: Kind.NAMED}


@dataclass(frozen=True, slots=True)
class SdkProfile:
    """What we learnt about a registering SDK: who it is and which legacy rules apply to it."""

    library: str = ""
    version: str = ""
    json_url: str = JSON_TYPE_URL
    broadcast_action: bool = False
    rules: tuple[str, ...] = ()

    @property
    def legacy(self) -> bool:
        return bool(self.rules)

    def __str__(self) -> str:
        who = f"{self.library or 'unknown SDK'} {self.version}".strip()
        return f"{who} ({', '.join(self.rules) or 'current protocol'})"


CURRENT: Final = SdkProfile()


def decode_registration(body: bytes) -> tuple[protocol_pb2.RegistrationRequest, SdkProfile]:
    """Decode RegistrationRequest bytes of any SDK generation into today's message.

    Raises ProtocolError (naming the message) when the bytes decode in neither form, and
    RegistrationError when the evidence contradicts itself.
    """
    try:
        current: protocol_pb2.RegistrationRequest | None = (
            protocol_pb2.RegistrationRequest.FromString(body)
        )
        problem = ""
    except DecodeError as exc:
        current, problem = None, str(exc)
    rules: list[str] = []
    if current is None or _suspicious_channels(current):
        normalized = _from_old_form(body)
        if normalized is not None:
            current = normalized
            rules.append("L1 string channel_group")
    if current is None:
        raise ProtocolError(
            f"body does not decode as spawn.RegistrationRequest ({problem}), nor in the old "
            "form with a string Metadata.channel_group"
        )
    info = current.service_info
    library = info.support_library_name or info.service_name
    version = info.support_library_version or info.service_version
    if library == NODE_SDK and _old_node_kinds(current, string_channels=bool(rules)):
        rules.append("L2 old Kind numbers")
    urls = _json_urls(current)
    if library in _OLD_GENERATION or rules or LEGACY_JSON_TYPE_URL in urls:
        json_url = LEGACY_JSON_TYPE_URL
        rules.append("L3 eigr.functions.protocol.JSONType")
    else:
        json_url = JSON_TYPE_URL
    old_broadcast = library in _OLD_GENERATION or "L1 string channel_group" in rules
    if old_broadcast:
        rules.append("L4 Broadcast action name")
    return current, SdkProfile(library, version, json_url, old_broadcast, tuple(rules))


def broadcast_action(broadcast: protocol_pb2.Broadcast) -> str:
    """The old ``Broadcast`` field 2 (the action subscribers run), or "" (rule L4)."""
    unknown = UnknownFieldSet(broadcast)
    for index in range(len(unknown)):
        field = unknown[index]
        if field.field_number == 2 and field.wire_type == 2:
            data = field.data
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
    return ""


# -- internals -------------------------------------------------------------------------------------


def _suspicious_channels(request: protocol_pb2.RegistrationRequest) -> bool:
    """A Channel that is really a mis-read string: no topic, or fields Channel does not have."""
    for actor in request.actor_system.registry.actors.values():
        for channel in actor.metadata.channel_group:
            if not channel.topic or len(UnknownFieldSet(channel)):
                return True
    return False


def _from_old_form(body: bytes) -> protocol_pb2.RegistrationRequest | None:
    """Decode with a string channel group and rebuild today's message, or None if that fails
    too or yields no string channel group (then the old form is no better an explanation)."""
    try:
        old = _old_registration_class().FromString(body)
    except DecodeError:
        return None
    topics: dict[str, str] = {}
    for key, actor in old.actor_system.registry.actors.items():  # type: ignore[attr-defined]
        if actor.HasField("metadata"):
            topics[key] = actor.metadata.channel_group
            actor.metadata.ClearField("channel_group")
    if not any(topics.values()):
        return None
    try:
        request = protocol_pb2.RegistrationRequest.FromString(old.SerializeToString())
    except DecodeError:
        return None
    actors = request.actor_system.registry.actors
    for key, topic in topics.items():
        if topic:
            actors[key].metadata.channel_group.add(topic=topic, action="receive")
    return request


def _old_node_kinds(request: protocol_pb2.RegistrationRequest, *, string_channels: bool) -> bool:
    """Rule L2: True (and kinds rewritten in place) if this nodejs_sdk used the old numbering."""
    old: list[str] = []
    new: list[str] = []
    for key, actor in request.actor_system.registry.actors.items():
        kind, parent, name = int(actor.settings.kind), actor.id.parent, actor.id.name
        if (kind == 1 and parent and parent == name) or (kind == 2 and not parent):
            old.append(key)
        elif kind == 2 and parent == name:
            new.append(key)
    if new and (old or string_channels):
        raise RegistrationError(
            f"registration from {NODE_SDK} mixes old Kind numbering (actors {old!r}"
            f"{', string channel groups' if string_channels else ''}) with the current one "
            f"(actors {new!r}); cannot tell what each actor's kind is"
        )
    if not (old or string_channels):
        return False
    for actor in request.actor_system.registry.actors.values():
        kind = int(actor.settings.kind)
        if kind in _OLD_NODE_KINDS:
            actor.settings.kind = int(_OLD_NODE_KINDS[kind])  # type: ignore[assignment]
    return True


def _json_urls(request: protocol_pb2.RegistrationRequest) -> set[str]:
    return {
        actor.state.state.type_url
        for actor in request.actor_system.registry.actors.values()
        if actor.state.HasField("state")
    }


def _file_proto(descriptor: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


@functools.cache
def _old_registration_class() -> type[Message]:
    """RegistrationRequest with ``Metadata.channel_group`` as a string, in a private pool so the
    default pool (which resolves type URLs) never sees these look-alike messages."""
    pool = descriptor_pool.DescriptorPool()
    for module in (any_pb2, timestamp_pb2):
        pool.Add(_file_proto(module.DESCRIPTOR))
    actor = _file_proto(actor_pb2.DESCRIPTOR)
    metadata = next(m for m in actor.message_type if m.name == "Metadata")
    field = next(f for f in metadata.field if f.name == "channel_group")
    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    field.label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    field.ClearField("type_name")
    pool.Add(actor)
    pool.Add(_file_proto(protocol_pb2.DESCRIPTOR))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("spawn.RegistrationRequest"))
