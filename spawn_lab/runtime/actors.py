"""Notebook-defined actors: the ``Actor`` builder, the ``Context`` a handler gets, and local hosts.

A cell builds an :class:`Actor`, decorates its handlers, and registers it. Nothing touches the
system until ``system.register(actor)``, which swaps the whole definition in one step, so
re-running the cell replaces the actor cleanly instead of half-updating it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from spawn_lab.core.errors import RegistrationError
from spawn_lab.core.model import (
    DEFAULT_ACTIONS,
    NOOP,
    ActorDefinition,
    ActorId,
    ActorSettings,
    Channel,
    HandlerKind,
    Kind,
    ProjectionSubject,
    TimerAction,
    Value,
    ViewSpec,
    validate_name,
)
from spawn_lab.stores.tables import parse_view

__all__ = ("Actor", "Context", "LocalHost", "as_value")

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)


class Context:
    """What a handler sees (Spawn's ``Context``): the state, tags, metadata, caller and self.

    Treat ``state`` as read-only and return a new one with ``Value(state=...)``: a handler that
    mutates it in place and then raises leaves the change behind.
    """

    __slots__ = ("action", "caller", "invocation_id", "metadata", "self", "state", "system", "tags")

    def __init__(
        self,
        state: object,
        tags: Mapping[str, str],
        metadata: Mapping[str, str],
        caller: ActorId | None,
        self_id: ActorId,
        action: str,
        invocation_id: int,
        system: Any = None,
    ) -> None:
        self.state = state
        self.tags = dict(tags)
        self.metadata = dict(metadata)
        self.caller = caller
        self.self = self_id
        self.action = action
        self.invocation_id = invocation_id
        self.system = system

    def __repr__(self) -> str:
        caller = self.caller.name if self.caller else "external"
        return f"<Context {self.self.name}.{self.action} #{self.invocation_id} from {caller}>"


def as_value(result: object) -> Value:
    """Turn what a handler returned into a :class:`Value` (``None`` means a Noop reply)."""
    if isinstance(result, Value):
        return result
    return Value(reply=NOOP if result is None else result)


class LocalHost:
    """Runs a notebook actor's actions: a table of Python functions or coroutine functions."""

    __slots__ = ("handlers",)

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)

    def handler(self, action: str) -> Handler:
        return self.handlers[action]


def _check_signature(action: str, fn: Handler) -> None:
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise RegistrationError(
            f"handler {getattr(fn, '__qualname__', fn)!r} for action {action!r} must accept "
            "(ctx, payload)"
        ) from None
    except ValueError:  # builtins without a signature: trust them
        pass


class Actor:
    """Build an actor definition in a cell::

    counter = Actor("counter", state={"value": 0})

    @counter.action
    def add(ctx, amount):
        total = ctx.state["value"] + amount
        return Value(total, state={"value": total})

    ref = system.register(counter)
    """

    def __init__(
        self,
        name: str,
        *,
        kind: Kind | str | int = Kind.NAMED,
        stateful: bool | None = None,
        state: object = None,
        tags: Mapping[str, str] | None = None,
        channels: Iterable[Channel | str] = (),
        snapshot_interval_ms: int | None = 2_000,
        deactivate_timeout_ms: int | None = 10_000,
        min_pool_size: int = 1,
        max_pool_size: int = 0,
        state_type: str = "",
        sourceable: bool = False,
        subjects: Iterable[ProjectionSubject] = (),
        strict_events_ordering: bool = False,
        events_retention_ms: int | None = 86_400_000,
        views: Mapping[str, ViewSpec] | None = None,
    ) -> None:
        self.name = validate_name("actor", name)
        resolved_kind = ActorSettings(kind=kind, stateful=False).kind  # type: ignore[arg-type]
        if stateful is None:
            stateful = resolved_kind is not Kind.POOLED
        self.settings = ActorSettings(
            kind=resolved_kind,
            stateful=stateful,
            snapshot_interval_ms=snapshot_interval_ms,
            deactivate_timeout_ms=deactivate_timeout_ms,
            min_pool_size=min_pool_size,
            max_pool_size=max_pool_size,
            state_type=state_type,
            sourceable=sourceable,
            subjects=tuple(subjects),
            strict_events_ordering=strict_events_ordering,
            events_retention_ms=events_retention_ms,
        )
        self.initial_state = state
        self.initial_tags = dict(tags or {})
        self.channels = tuple(c if isinstance(c, Channel) else Channel(c) for c in channels)
        self._handlers: dict[str, Handler] = {}
        self._timers: list[TimerAction] = []
        self.views = {validate_name("view", k): v for k, v in (views or {}).items()}
        if self.views and resolved_kind is not Kind.PROJECTION:
            raise RegistrationError(f"actor {name!r}: only PROJECTION actors have views")
        for view_name, view in self.views.items():
            if not isinstance(view, ViewSpec):
                raise RegistrationError(
                    f"actor {name!r}: view {view_name!r} must be a ViewSpec, not {view!r}"
                )
            parse_view(view.query)  # an empty or non-text query fails here, not at first use

    def action(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """Decorator: register ``fn(ctx, payload)`` as an action, named after the function."""

        def register(func: F) -> F:
            action = validate_name("action", name or func.__name__)
            _check_signature(action, func)
            if action in self._handlers:
                raise RegistrationError(f"actor {self.name!r} already has an action {action!r}")
            self._handlers[action] = func
            return func

        return register(fn) if fn is not None else register

    def timer(self, every_ms: int, *, name: str | None = None) -> Callable[[F], F]:
        """Decorator: an action that also fires every ``every_ms`` milliseconds (§7)."""

        def register(func: F) -> F:
            self.action(func, name=name)
            self._timers.append(TimerAction(name or func.__name__, every_ms))
            return func

        return register

    def definition(self) -> ActorDefinition:
        """The immutable definition the engine registers."""
        if self.settings.kind is Kind.PROJECTION and not self.settings.subjects:
            raise RegistrationError(f"PROJECTION actor {self.name!r} needs at least one subject")
        shadowed = sorted(set(self.views) & set(self._handlers))
        if shadowed:
            raise RegistrationError(
                f"actor {self.name!r}: {shadowed} are views, which never call a handler (§8.5); "
                "rename the view or the handler"
            )
        for channel in self.channels:
            if channel.action not in self._handlers:
                raise RegistrationError(
                    f"actor {self.name!r} subscribes {channel.topic!r} into action "
                    f"{channel.action!r}, which it does not define"
                )
        kinds = {
            action: HandlerKind.ASYNC if inspect.iscoroutinefunction(fn) else HandlerKind.SYNC
            for action, fn in self._handlers.items()
        }
        return ActorDefinition(
            name=self.name,
            settings=self.settings,
            actions=tuple(self._handlers),
            action_kinds=kinds,
            timers=tuple(self._timers),
            channels=self.channels,
            initial_state=self.initial_state,
            initial_tags=self.initial_tags,
            host=LocalHost(self._handlers),
            views=self.views,
        )

    @property
    def actions(self) -> list[str]:
        return list(self._handlers)

    def __repr__(self) -> str:
        overrides = sorted(set(self._handlers) & DEFAULT_ACTIONS)
        extra = f", overrides {overrides}" if overrides else ""
        return f"<Actor {self.name!r} {self.settings.kind.name} actions={self.actions}{extra}>"
