"""``ServiceActor``: an actor whose actions are the rpcs of a proto service (§9.1, §9.2).

Binding is checked both ways, because a mismatch would otherwise show up only when a remote
client calls: a handler for an rpc the service lacks fails at once; an rpc left without a
handler fails when the actor is built (``definition()``, i.e. at ``system.register``).
View rpcs (``spawn.actors.view``) take no handler: the runtime answers them from the
projection table (§8.5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from spawn_lab.core.errors import RegistrationError
from spawn_lab.core.model import ActorDefinition, Channel
from spawn_lab.protobuf.services import ActorService, actor_kwargs
from spawn_lab.runtime.actors import Actor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from spawn_lab.protobuf.compiled import CompiledProto

__all__ = ("ServiceActor",)

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)
_UNSET: Any = object()


class ServiceActor(Actor):
    """An :class:`~spawn_lab.Actor` built from a service with the ``(spawn.actors.actor)`` option.

    Its name is the camelized service name, as the gRPC dispatcher expects; its settings come
    from the option. The initial state is an empty ``state_type`` message unless ``state`` is
    given. Build one with ``proto.actor("Service", handlers={...})``.
    """

    def __init__(
        self,
        proto: CompiledProto,
        service: ActorService,
        handlers: Mapping[str, Handler] | None = None,
        *,
        state: object = _UNSET,
        tags: Mapping[str, str] | None = None,
        channels: Iterable[Channel | str] = (),
    ) -> None:
        if service.options is None:
            raise RegistrationError(
                f"service {service.full_name!r} has no (spawn.actors.actor) option, so it is "
                "not an actor; add `option (spawn.actors.actor) = { kind: NAMED };`"
            )
        kwargs = actor_kwargs(service.options)
        if state is _UNSET:
            state_type = kwargs["state_type"]
            state = proto.message_class(state_type)() if state_type else None
        super().__init__(service.actor, state=state, tags=tags, channels=channels, **kwargs)
        self.service = service
        if handlers is not None:
            for rpc in handlers:
                self._check_rpc(rpc)
            for rpc, fn in handlers.items():
                self.action(fn, name=rpc)
            self._check_complete()

    def rpc(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """Decorator: bind ``fn(ctx, request)`` to the rpc of its name (or ``name``)."""

        def bind(func: F) -> F:
            self._check_rpc(name or func.__name__)
            return self.action(func, name=name)  # type: ignore[no-any-return]

        return bind(fn) if fn is not None else bind

    def definition(self) -> ActorDefinition:
        """The definition to register; fails naming every rpc that still has no handler."""
        self._check_complete()
        defn = super().definition()
        views = {m.name: m.view for m in self.service.methods.values() if m.view is not None}
        return dataclasses.replace(defn, views=views) if views else defn

    def _check_rpc(self, rpc: str) -> None:
        method = self.service.methods.get(rpc)
        if method is None:
            raise RegistrationError(
                f"service {self.service.full_name!r} has no rpc {rpc!r} to bind a handler to; "
                f"its rpcs are: {', '.join(self.service.methods) or '(none)'}"
            )
        if method.view is not None:
            raise RegistrationError(
                f"rpc {rpc!r} of {self.service.full_name!r} is a view (query "
                f"{method.view.query!r}): the runtime answers it, so it takes no handler"
            )

    def _check_complete(self) -> None:
        missing = [
            name
            for name, method in self.service.methods.items()
            if method.view is None and name not in self._handlers
        ]
        if missing:
            raise RegistrationError(
                f"service {self.service.full_name!r}: no handler for rpc "
                f"{', '.join(repr(m) for m in missing)} (bound: "
                f"{', '.join(self._handlers) or 'none'})"
            )

    def __repr__(self) -> str:
        return (
            f"<ServiceActor {self.name!r} for {self.service.full_name} "
            f"{self.settings.kind.name} rpcs={list(self.service.methods)}>"
        )
