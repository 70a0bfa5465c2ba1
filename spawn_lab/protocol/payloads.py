"""Pack Python values into ``google.protobuf.Any`` and back, as Spawn payloads and state travel.

Spawn never looks inside an ``Any``: proxies pass payloads and state through, and each SDK decides
what they mean. Two shapes matter:

- a protobuf message travels as itself, with type URL ``type.googleapis.com/<full name>``;
- any other value must be JSON, wrapped in ``spawn.JSONType{content}`` (type URL
  ``type.googleapis.com/spawn.JSONType``), which is how the SDKs send plain maps and lists.

Decoding is the mirror image, with one rule that keeps meshes working: an ``Any`` whose type we do
not know (a remote SDK's own message) comes back unchanged, so it can be forwarded byte for byte.

These functions run on every invocation, so the JSON path never touches the descriptor pool, and
message classes are looked up once per type URL and then cached.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Final

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from spawn_lab.core.errors import PayloadError
from spawn_lab.protocol.spawn.actors.protocol_pb2 import JSONType

__all__ = (
    "JSON_TYPE_URL",
    "LEGACY_JSON_TYPE_URL",
    "decode",
    "encode",
    "message_class",
    "pack",
    "register_types",
    "type_url_of",
    "unpack",
)

TYPE_URL_PREFIX: Final = "type.googleapis.com/"
JSON_TYPE_URL: Final = "type.googleapis.com/spawn.JSONType"
#: The same message under the SDKs' old package name; spawn-node-sdk 1.2.0 still sends it.
LEGACY_JSON_TYPE_URL: Final = "type.googleapis.com/eigr.functions.protocol.JSONType"

_JSON_URLS: Final = frozenset((JSON_TYPE_URL, LEGACY_JSON_TYPE_URL))
_JSON_SCALARS: Final = frozenset((type(None), bool, int, str))
_ROOT: Final = "payload"
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)

# type URL -> message class. Only hits are cached: a miss costs one pool lookup (well under a
# microsecond), and a notebook may import the module that defines the type later on.
_classes: dict[str, type[Message]] = {}


def pack(value: object) -> any_pb2.Any:
    """Wrap ``value`` in an ``Any``: messages as themselves, everything else as ``spawn.JSONType``.

    An ``Any`` is returned as is (the same object), so callers can forward opaque payloads.
    Raises PayloadError, naming the offending path, for a value that is neither.
    """
    if isinstance(value, Message):
        if isinstance(value, any_pb2.Any):
            return value
        return any_pb2.Any(type_url=_url_of_message(value), value=value.SerializeToString())
    return any_pb2.Any(type_url=JSON_TYPE_URL, value=_json_bytes(value))


def unpack(any: any_pb2.Any) -> object:
    """Open an ``Any``: JSON values decoded, known messages parsed, unknown types returned as is.

    Raises PayloadError, naming the type URL, if the bytes do not decode as their type.
    """
    url = any.type_url
    if url in _JSON_URLS:
        return _json_value(url, any.value)
    cls = _class_of(url)
    if cls is None:
        return any
    return _parse(cls, url, any.value)


def type_url_of(value: object) -> str:
    """The type URL ``pack(value)`` would produce (raises PayloadError where ``pack`` would)."""
    if isinstance(value, Message):
        return value.type_url if isinstance(value, any_pb2.Any) else _url_of_message(value)
    _check_json(value)
    return JSON_TYPE_URL


def encode(value: object) -> tuple[str, bytes]:
    """``pack`` as a (type URL, bytes) pair, the shape state stores keep in their rows."""
    if isinstance(value, Message):
        if isinstance(value, any_pb2.Any):
            return value.type_url, value.value
        return _url_of_message(value), value.SerializeToString()
    return JSON_TYPE_URL, _json_bytes(value)


def decode(type_url: str, data: bytes) -> object:
    """``unpack`` from a (type URL, bytes) pair; an unknown type comes back as an ``Any``."""
    if type_url in _JSON_URLS:
        return _json_value(type_url, data)
    cls = _class_of(type_url)
    if cls is None:
        return any_pb2.Any(type_url=type_url, value=data)
    return _parse(cls, type_url, data)


# --- messages -----------------------------------------------------------------------------------


def register_types(types: Mapping[str, type[Message] | None]) -> None:
    """Decode these type URLs with these classes (``None`` withdraws one).

    For message types compiled at run time (a ``%%proto`` cell) that live in their own
    descriptor pool: registered classes win over the default pool.
    """
    for url, cls in types.items():
        if cls is None:
            _classes.pop(url, None)
        else:
            _classes[url] = cls


def message_class(name: str) -> type[Message] | None:
    """The class of a message by full name (a leading dot is fine) or type URL, if known."""
    name = name.lstrip(".")
    return _class_of(name if "/" in name else TYPE_URL_PREFIX + name)


def _url_of_message(message: Message) -> str:
    return TYPE_URL_PREFIX + message.DESCRIPTOR.full_name


def _class_of(type_url: str) -> type[Message] | None:
    """The message class of ``type_url`` in the default pool, or None if the pool lacks it."""
    cls = _classes.get(type_url)
    if cls is None:
        name = type_url.rpartition("/")[2]
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
        except KeyError:
            return None
        cls = _classes[type_url] = message_factory.GetMessageClass(descriptor)
    return cls


def _parse(cls: type[Message], type_url: str, data: bytes) -> Message:
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise PayloadError(
            f"payload of type {type_url!r} does not decode as {cls.DESCRIPTOR.full_name}: {exc}"
        ) from exc


# --- JSON ---------------------------------------------------------------------------------------


def _json_bytes(value: object) -> bytes:
    """Serialized ``spawn.JSONType{content}`` bytes for a JSON-able value.

    The one-field message is written by hand (tag 1, length, UTF-8 text): it saves building and
    serializing a message object on every call; tests check it against the generated class.
    """
    if type(value) is int:  # the commonest payload: its JSON text is its repr, no encoder
        content = repr(value).encode("ascii")
        return b"\n" + bytes((len(content),)) + content
    _check_json(value)
    # Same text as json.dumps(value, separators=(",", ":"), allow_nan=False), without building an
    # encoder per call; _check_json has already refused cycles, so the encoder need not look.
    content = _ENCODER.encode(value).encode("ascii")  # ensure_ascii: the text is ASCII
    size = len(content)
    if size < 0x80:
        return b"\n" + bytes((size,)) + content
    head = bytearray(b"\n")
    while size >= 0x80:
        head.append((size & 0x7F) | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + content


def _json_value(type_url: str, data: bytes) -> object:
    try:
        content = JSONType.FromString(data).content
    except DecodeError as exc:
        raise PayloadError(f"payload of type {type_url!r} is not a JSONType: {exc}") from exc
    if content.isdigit() and len(content) < 19 and (content[0] != "0" or len(content) == 1):
        return int(content)  # the commonest payload, without the JSON decoder
    try:
        return json.loads(content)
    except ValueError as exc:
        raise PayloadError(
            f"payload of type {type_url!r} does not hold valid JSON ({exc}): {content[:80]!r}"
        ) from exc


def _check_json(value: object) -> None:
    """Raise PayloadError unless ``value`` is JSON that round-trips (str keys, finite floats).

    ``json.dumps`` alone is not enough: it turns int keys into strings (so the value would come
    back different) and its errors do not say where in the value the problem is. The walk builds
    no path strings while all is well; the path is assembled only when a problem unwinds.
    """
    if type(value) in _JSON_SCALARS:  # the common case; no walk
        return
    try:
        _walk(value, set())
    except _NotJson as exc:
        path = _ROOT + "".join(reversed(exc.segments))
        raise PayloadError(path + exc.problem) from None
    except RecursionError:
        raise PayloadError(f"{_ROOT} is nested too deeply to be JSON") from None


class _NotJson(Exception):
    """Internal: what is wrong, plus path segments collected while unwinding (innermost first)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.segments: list[str] = []


def _walk(value: object, active: set[int]) -> None:
    if type(value) in _JSON_SCALARS:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJson(f" is {value!r}, which JSON cannot carry")
        return
    if isinstance(value, (list, tuple)):
        _enter(value, active)
        for index, item in enumerate(value):
            if type(item) not in _JSON_SCALARS:
                try:
                    _walk(item, active)
                except _NotJson as exc:
                    exc.segments.append(f"[{index}]")
                    raise
        active.discard(id(value))
        return
    if isinstance(value, dict):
        _enter(value, active)
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJson(f" has the key {key!r}, {_a(key)}; JSON object keys must be str")
            if type(item) not in _JSON_SCALARS:
                try:
                    _walk(item, active)
                except _NotJson as exc:
                    exc.segments.append(f"[{key!r}]")
                    raise
        active.discard(id(value))
        return
    if isinstance(value, (bool, int, str)):  # subclasses, e.g. IntEnum and StrEnum
        return
    raise _NotJson(f" is {_a(value)}, which is neither a protobuf message nor JSON-able")


def _enter(container: object, active: set[int]) -> None:
    if id(container) in active:
        raise _NotJson(" contains itself, which JSON cannot carry")
    active.add(id(container))


def _a(value: object) -> str:
    """'a set', 'an Ellipsis', 'a datetime.date': the type of ``value`` with its article."""
    cls = type(value)
    module = "" if cls.__module__ == "builtins" else f"{cls.__module__}."
    name = module + cls.__qualname__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"
