"""What the engine asks the driver to do, and the invocation record both of them share.

The engine never performs IO; it returns these effects in order and the driver carries them out.
Order matters: a durable :class:`Save` comes before the :class:`Reply` it must precede.
``Run`` and ``Reply`` are made on every invocation, so they skip the cost of frozen dataclasses;
nothing mutates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from spawn_lab.core.model import NOOP, ActorDefinition, ActorId, HandlerKind

__all__ = (
    "Invocation",
    "Load",
    "Reply",
    "Run",
    "Save",
    "Status",
    "Upsert",
    "Via",
)


class Via(Enum):
    """How an invocation came to be; shown on the graph's edges and in the trace."""

    EXTERNAL = "invoke"
    TIMER = "timer"
    SCHEDULED = "scheduled"
    BROADCAST = "broadcast"
    EFFECT = "side_effect"
    PIPE = "pipe"
    FORWARD = "forward"
    INIT = "init"
    PROJECTION = "projection"


class Status(Enum):
    """The status column of a saved snapshot (§6.3)."""

    ACTIVATED = "ACTIVATED"
    DEACTIVATED = "DEACTIVATED"
    UNKNOWN = "UNKNOWN"


class Invocation:
    """One message on its way to an actor. Mutable: the engine tracks it until it is answered.

    ``waiter`` is the runtime's opaque reply handle (``None`` for a tell); a pipe or forward
    hands it on to the next hop, so the caller gets the last target's answer.
    """

    __slots__ = (
        "action",
        "actor",
        "asynchronous",
        "caller",
        "cause",
        "entity",
        "id",
        "metadata",
        "payload",
        "register_ref",
        "scheduled_to",
        "via",
        "waiter",
    )

    def __init__(
        self,
        id: int,
        actor: str,
        action: str,
        payload: object = NOOP,
        *,
        caller: ActorId | None = None,
        metadata: Mapping[str, str] | None = None,
        asynchronous: bool = False,
        via: Via = Via.EXTERNAL,
        cause: int = 0,
        register_ref: str = "",
        scheduled_to: float = 0.0,
        waiter: Any = None,
    ) -> None:
        self.id = id
        self.actor = actor
        self.action = action
        self.payload = payload
        self.caller = caller
        self.metadata: Mapping[str, str] = metadata if metadata is not None else {}
        self.asynchronous = asynchronous
        self.via = via
        self.cause = cause
        self.register_ref = register_ref
        self.scheduled_to = scheduled_to
        self.waiter = waiter
        self.entity: Any = None

    def __repr__(self) -> str:
        return f"<Invocation #{self.id} {self.via.value} {self.actor}.{self.action}>"


@dataclass(slots=True, eq=False)
class Run:
    """Run ``invocation`` on ``actor_id`` with this state; report back with ``completed``."""

    invocation: Invocation
    actor_id: ActorId
    definition: ActorDefinition
    state: object
    tags: Mapping[str, str]
    kind: HandlerKind
    entity_key: str


@dataclass(slots=True, eq=False)
class Reply:
    """Answer the waiter of an ask: ``value`` if ``ok``, else ``error`` (an exception)."""

    waiter: Any
    invocation: int
    ok: bool
    value: object = NOOP
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Load:
    """Load the actor's latest (or ``revision``) snapshot; report back with ``loaded``."""

    actor_id: ActorId
    entity_key: str
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Save:
    """Persist one snapshot. ``durable`` saves complete before the effects that follow them."""

    actor_id: ActorId
    entity_key: str
    revision: int
    state: object
    tags: Mapping[str, str]
    status: Status
    durable: bool
    state_type: str = ""
    invocation: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Upsert:
    """Upsert a PROJECTION actor's new state into its view table (§8.4), keyed by its id field."""

    actor_id: ActorId
    state: object
    state_type: str = ""
