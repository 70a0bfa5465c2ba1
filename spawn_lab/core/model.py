"""Immutable values of Spawn's actor model: ids, settings, definitions and what a handler returns.

These mirror the messages of ``spawn/actors/actor.proto`` and ``protocol.proto`` closely enough that
the protocol codec maps them one to one, but they are plain frozen dataclasses, so the core needs no
protobuf and a notebook user can build them by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from spawn_lab.core.errors import RegistrationError

__all__ = (
    "DEFAULT_ACTIONS",
    "INIT_ACTIONS",
    "NOOP",
    "RESTORE_ACTION",
    "ActorDefinition",
    "ViewSpec",
    "ActorId",
    "ActorSettings",
    "Broadcast",
    "Channel",
    "Forward",
    "HandlerKind",
    "Kind",
    "Noop",
    "Pipe",
    "ProjectionSubject",
    "SideEffect",
    "TimerAction",
    "Value",
    "validate_name",
)


class Kind(IntEnum):
    """Actor kinds, with Spawn's wire numbers (``spawn.actors.Kind``)."""

    UNKNOWN = 0
    NAMED = 1
    UNNAMED = 2
    POOLED = 3
    PROXY = 4
    TASK = 5
    PROJECTION = 6


class HandlerKind(Enum):
    """How the driver must run an action: inline, on an event loop, or on the task executor."""

    SYNC = "sync"
    ASYNC = "async"
    TASK = "task"
    VIEW = "view"


class Noop:
    """The empty payload (``spawn.Noop``). There is one instance, :data:`NOOP`."""

    __slots__ = ()
    _instance: Noop | None = None

    def __new__(cls) -> Noop:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOOP"

    def __reduce__(self) -> str:
        return "NOOP"


NOOP = Noop()

#: Actions the runtime answers itself with the current state, unless the actor defines them (§4.4).
DEFAULT_ACTIONS = frozenset({"get", "Get", "get_state", "getState", "GetState"})
#: Actions run once on every activation, before the first message (§4.7).
INIT_ACTIONS = ("init", "Init", "setup", "Setup")
#: The built-in action behind ``ActorSystem.restore``: it goes through the mailbox like any message.
RESTORE_ACTION = "spawn_lab.restore"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-:@#]{0,254}$")


def validate_name(what: str, value: object) -> str:
    """Return ``value`` if it is a usable actor, system, action or topic name, else raise.

    Spawn does not validate names (§10.6), but names end up in URLs, table names and stream
    subjects, so we refuse the ones that would break those later with a far worse message.
    """
    if not isinstance(value, str) or not _NAME.match(value):
        raise RegistrationError(
            f"invalid {what} name {value!r}: use 1-255 letters, digits or _ . - : @ #, "
            "not starting with punctuation"
        )
    return value


@dataclass(frozen=True, slots=True)
class ActorId:
    """An actor's identity; the registry key is ``(name, system)``; ``parent`` is the template."""

    name: str
    system: str
    parent: str = ""

    def __str__(self) -> str:
        return f"{self.system}/{self.name}" + (f" (from {self.parent})" if self.parent else "")


@dataclass(frozen=True, slots=True)
class Channel:
    """A broadcast subscription: messages on ``topic`` invoke ``action`` (default ``receive``)."""

    topic: str
    action: str = "receive"

    def __post_init__(self) -> None:
        validate_name("topic", self.topic)
        if not self.action:
            object.__setattr__(self, "action", "receive")


@dataclass(frozen=True, slots=True)
class TimerAction:
    """A ``FixedTimerAction``: invoke ``action`` every ``interval_ms`` while the system runs."""

    action: str
    interval_ms: int

    def __post_init__(self) -> None:
        validate_name("timer action", self.action)
        if not isinstance(self.interval_ms, int) or self.interval_ms <= 0:
            raise RegistrationError(
                f"timer {self.action!r}: interval_ms must be a positive int, "
                f"got {self.interval_ms!r}"
            )


@dataclass(frozen=True, slots=True)
class ProjectionSubject:
    """What a PROJECTION actor listens to: ``source_action`` facts of ``actor``, into ``action``."""

    actor: str
    source_action: str
    action: str
    start_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """A view action of a PROJECTION actor (``spawn.actors.view``): a query over its table (§8.5).

    ``query`` uses ``:field`` parameters taken from the request payload; rows go into the
    ``map_to`` field of the reply; ``page_size`` is the default page length.
    """

    query: str
    map_to: str = ""
    page_size: int = 10
    input_type: str = ""
    output_type: str = ""


@dataclass(frozen=True, slots=True)
class ActorSettings:
    """``spawn.actors.ActorSettings`` with Spawn's defaults (§6.1).

    ``snapshot_interval_ms=None`` means no periodic snapshots; ``deactivate_timeout_ms=None``
    means the default of 10 s (upstream defect D6 would never deactivate; we build the intent).
    """

    kind: Kind = Kind.NAMED
    stateful: bool = True
    snapshot_interval_ms: int | None = 2_000
    deactivate_timeout_ms: int | None = 10_000
    min_pool_size: int = 1
    max_pool_size: int = 0
    state_type: str = ""
    sourceable: bool = False
    subjects: tuple[ProjectionSubject, ...] = ()
    strict_events_ordering: bool = False
    events_retention_ms: int | None = 86_400_000

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            try:
                object.__setattr__(self, "kind", _kind_of(self.kind))
            except (ValueError, KeyError):
                raise RegistrationError(f"unknown actor kind {self.kind!r}") from None
        for name in ("snapshot_interval_ms", "deactivate_timeout_ms"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise RegistrationError(f"{name} must be a non-negative int or None, got {value!r}")
        if self.min_pool_size < 0 or self.max_pool_size < 0:
            raise RegistrationError(
                f"pool sizes must be >= 0, got min={self.min_pool_size!r} "
                f"max={self.max_pool_size!r}"
            )
        if self.max_pool_size and self.max_pool_size < self.min_pool_size:
            raise RegistrationError(
                f"max_pool_size {self.max_pool_size!r} is below "
                f"min_pool_size {self.min_pool_size!r}"
            )
        if self.kind is Kind.POOLED and self.stateful:
            raise RegistrationError("a POOLED actor is stateless: set stateful=False")

    @property
    def pool_size(self) -> int:
        """How many replicas a POOLED actor may run at once (0 as max means min, at least 1)."""
        return max(self.max_pool_size, self.min_pool_size, 1)


def _kind_of(value: object) -> Kind:
    if isinstance(value, str):
        return Kind[value.upper()]
    if isinstance(value, int):
        return Kind(value)
    raise ValueError(value)


@dataclass(frozen=True, slots=True)
class ActorDefinition:
    """A registered actor or template: what Spawn calls ``spawn.actors.Actor``.

    ``host`` is opaque to the core: the driver asks it to run actions (a table of Python handlers,
    or a remote user function). ``action_kinds`` tells the driver how each action must be run.
    """

    name: str
    settings: ActorSettings = field(default_factory=ActorSettings)
    actions: tuple[str, ...] = ()
    action_kinds: Mapping[str, HandlerKind] = field(default_factory=dict)
    timers: tuple[TimerAction, ...] = ()
    channels: tuple[Channel, ...] = ()
    initial_state: object = None
    initial_tags: Mapping[str, str] = field(default_factory=dict)
    host: object = None
    remote: bool = False
    views: Mapping[str, ViewSpec] = field(default_factory=dict)
    #: how each invokable action runs (``kind_of`` for every action), computed once because
    #: the engine looks it up on every invocation
    run_kinds: Mapping[str, HandlerKind] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        validate_name("actor", self.name)
        for action in self.actions:
            validate_name("action", action)
        kinds = {action: self.kind_of(action) for action in self.all_actions()}
        object.__setattr__(self, "run_kinds", kinds)

    def has_action(self, action: str) -> bool:
        """True if ``action`` is a registered, timer or view action (all are invokable)."""
        return (
            action in self.action_kinds
            or action in self.views
            or any(t.action == action for t in self.timers)
        )

    def all_actions(self) -> list[str]:
        """Every invokable action, sorted, for error messages and the UI."""
        names = set(self.actions) | {t.action for t in self.timers} | set(self.views)
        return sorted(names)

    def init_action(self) -> str | None:
        """The first registered action named init/Init/setup/Setup (§4.7), if any."""
        for action in self.actions:
            if action in INIT_ACTIONS:
                return action
        return None

    def kind_of(self, action: str) -> HandlerKind:
        """How to run ``action``; TASK actors always run on the task executor (§3.6)."""
        if action in self.views:
            return HandlerKind.VIEW
        if self.settings.kind is Kind.TASK:
            return HandlerKind.TASK
        return self.action_kinds.get(action, HandlerKind.ASYNC if self.remote else HandlerKind.SYNC)


@dataclass(frozen=True, slots=True)
class SideEffect:
    """Invoke another actor after this action, without delaying the caller's reply (§5.2)."""

    actor: str
    action: str
    payload: object = NOOP
    metadata: Mapping[str, str] = field(default_factory=dict)
    register_ref: str = ""
    delay_ms: int = 0
    system: str = ""


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Publish ``payload`` to every actor subscribed to ``channel`` (§5.1).

    ``action``, if set, overrides every subscriber's channel action: the old SDKs' Broadcast
    ``command_name`` (Appendix B), which the wire layer decodes into it.
    """

    channel: str
    payload: object = NOOP
    action: str = ""


@dataclass(frozen=True, slots=True)
class Pipe:
    """Send this action's *output* to ``actor.action``; the caller gets that answer (§5.3)."""

    actor: str
    action: str
    register_ref: str = ""


@dataclass(frozen=True, slots=True)
class Forward:
    """Send this action's *input* to ``actor.action``; the caller gets that answer (§5.3)."""

    actor: str
    action: str
    register_ref: str = ""


_UNCHANGED = object()


@dataclass(slots=True)
class Value:
    """What a handler returns: a reply, a new state and tags, and an optional workflow.

    Returning a plain value from a handler is the same as ``Value(reply=value)``; returning
    ``None`` replies with Noop. Leaving ``state`` out keeps the current state; leaving ``tags``
    out keeps the current tags (the intended behaviour of upstream defect D8). Every handler
    call makes one, so it is not frozen (that costs a third of an ask); treat it as immutable.
    """

    reply: object = NOOP
    state: object = _UNCHANGED
    tags: Mapping[str, str] | None = None
    effects: tuple[SideEffect, ...] = ()
    broadcast: Broadcast | None = None
    pipe: Pipe | None = None
    forward: Forward | None = None
    checkpoint: bool = False

    def __post_init__(self) -> None:
        if self.pipe is not None and self.forward is not None:
            raise RegistrationError("a Value can pipe or forward, not both (they are a oneof)")
        if type(self.effects) is not tuple:
            self.effects = tuple(self.effects)

    @property
    def changes_state(self) -> bool:
        """True if this Value replaces the actor's state."""
        return self.state is not _UNCHANGED
