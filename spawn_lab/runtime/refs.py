"""``ActorRef``: a handle on one actor, with the ask, tell and inspection calls of the system."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from spawn_lab.core.model import NOOP

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = ("ActorRef",)


class ActorRef:
    """A reference to a named actor or spawned instance of one system."""

    __slots__ = ("name", "system")

    def __init__(self, system: ActorSystem, name: str) -> None:
        self.system = system
        self.name = name

    def ask(
        self,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> object:
        """Invoke and wait for the reply (blocks only the calling cell)."""
        return self.system.ask(self.name, action, payload, metadata=metadata, timeout=timeout)

    def ask_async(
        self,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, object]:
        """Invoke and ``await`` the reply (returns the system's coroutine: no extra layer)."""
        return self.system.ask_async(self.name, action, payload, metadata=metadata, timeout=timeout)

    def tell(
        self,
        action: str,
        payload: object = NOOP,
        *,
        metadata: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> int:
        """Invoke without waiting; returns the invocation id."""
        return self.system.tell(self.name, action, payload, metadata=metadata, delay=delay)

    def spawn(self, name: str, *, revision: int = 0) -> ActorRef:
        """Spawn instance ``name`` of this UNNAMED template."""
        return self.system.spawn(name, self.name, revision=revision)

    @property
    def state(self) -> object:
        return self.system.state(self.name)

    @property
    def tags(self) -> dict[str, str]:
        return self.system.inspect(self.name)[1]

    @property
    def revision(self) -> int:
        return self.system.inspect(self.name)[2]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ActorRef) and other.system is self.system and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((id(self.system), self.name))

    def __repr__(self) -> str:
        return f"<ActorRef {self.system.name}/{self.name}>"

    def _repr_html_(self) -> str:
        from spawn_lab.runtime.html import ref_html

        return ref_html(self)
