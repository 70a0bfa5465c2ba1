"""``CompiledProto``: one compiled proto file, used like a generated ``*_pb2`` module.

Its messages live in a descriptor pool of their own (one per compile), so compiling the same
file again with different text gives new classes instead of a "duplicate file" error; the
registry then points payloads at the new classes.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from spawn_lab.core.errors import RegistrationError
from spawn_lab.protobuf.services import ActorService, describe_service

if TYPE_CHECKING:
    from spawn_lab.protobuf.binding import ServiceActor

__all__ = ("CompiledProto",)

Handler = Callable[..., Any]


class CompiledProto:
    """A compiled ``.proto``: message classes by name, services, and actors bound to them.

    ``proto.Point(x=1)`` builds a message as ``point_pb2.Point(x=1)`` would; ``proto.actor(...)``
    turns a service with the ``(spawn.actors.actor)`` option into a registrable actor.
    """

    def __init__(
        self,
        name: str,
        text: str,
        file: FileDescriptor,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.text = text
        self.file = file
        self.pool: descriptor_pool.DescriptorPool = file.pool
        self.warnings = warnings
        self.messages: dict[str, type[Message]] = {}
        for descriptor in file.message_types_by_name.values():
            self._collect(descriptor)
        self.services: dict[str, ActorService] = {
            s.full_name: describe_service(s, self.message_class)
            for s in file.services_by_name.values()
        }
        # Top-level messages as plain attributes, as in a generated module: handlers build
        # replies with ``proto.Total(...)`` on every call, and __getattr__ would cost each time.
        for short, descriptor in file.message_types_by_name.items():
            if short not in self.__dict__ and not hasattr(type(self), short):
                self.__dict__[short] = self.messages[descriptor.full_name]

    def _collect(self, descriptor: Descriptor) -> None:
        if descriptor.GetOptions().map_entry:
            return
        self.messages[descriptor.full_name] = message_factory.GetMessageClass(descriptor)
        for nested in descriptor.nested_types:
            self._collect(nested)

    @property
    def package(self) -> str:
        return self.file.package

    def message_class(self, name: str) -> type[Message]:
        """The class of message ``name`` (full name, leading dot allowed, or a name in this file).

        Types this file defines come from its own pool; imported ones (``google.protobuf.Empty``,
        Spawn's) are the generated classes of the default pool when it has them, so that
        ``isinstance`` checks against ``empty_pb2.Empty`` keep working.
        """
        full = name.lstrip(".")
        own = self.messages.get(full) or self.messages.get(f"{self.package}.{full}")
        if own is not None:
            return own
        for pool in (descriptor_pool.Default(), self.pool):
            try:
                return message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
            except KeyError:
                continue
        known = ", ".join(sorted(self.messages)) or "none"
        raise RegistrationError(f"{self.name}: no message {name!r} (this file defines: {known})")

    def service(self, name: str) -> ActorService:
        """A service by full or short name."""
        found = self.services.get(name) or self.services.get(f"{self.package}.{name}")
        if found is None:
            for service in self.services.values():
                if name in (service.name, service.actor):
                    return service
            known = ", ".join(s.name for s in self.services.values()) or "none"
            raise RegistrationError(
                f"{self.name}: no service {name!r} (this file defines: {known})"
            )
        return found

    def actor(
        self,
        service: str,
        handlers: Mapping[str, Handler] | None = None,
        **options: Any,
    ) -> ServiceActor:
        """An actor for ``service``: each rpc is an action, bound to a Python handler.

        Pass every handler in ``handlers`` (checked at once), or bind them one by one with the
        ``@actor.rpc`` decorator (checked when the actor is registered). ``options`` are
        ``state``, ``tags`` and ``channels`` of :class:`~spawn_lab.Actor`; the settings come
        from the service's ``(spawn.actors.actor)`` option.
        """
        from spawn_lab.protobuf.binding import ServiceActor

        return ServiceActor(self, self.service(service), handlers, **options)

    def __getattr__(self, name: str) -> Any:
        """Top-level enums by short name, like a generated module (messages are attributes)."""
        if name.startswith("_"):
            raise AttributeError(name)
        file = self.__dict__.get("file")
        if file is not None:
            if name in file.message_types_by_name:
                return self.messages[file.message_types_by_name[name].full_name]
            if name in file.enum_types_by_name:
                return EnumTypeWrapper(file.enum_types_by_name[name])
        raise AttributeError(f"{self.__dict__.get('name', 'proto')!r} defines no {name!r}")

    def __dir__(self) -> list[str]:
        names = list(self.file.message_types_by_name) + list(self.file.enum_types_by_name)
        return sorted(set(super().__dir__()) | set(names))

    def __repr__(self) -> str:
        actors = [s.name for s in self.services.values() if s.is_actor]
        return (
            f"<CompiledProto {self.name!r} package={self.package!r} "
            f"messages={len(self.messages)} actor services={actors}>"
        )

    def _repr_html_(self) -> str:
        rows = []
        for service in self.services.values():
            kind = service.kind.name if service.is_actor else "(no actor option)"
            for rpc in service.methods.values():
                routes = ", ".join(f"{b.verb} {b.template}" for b in rpc.http)
                extra = " view" if rpc.view else ""
                rows.append(
                    "<tr>"
                    + "".join(
                        f"<td>{html.escape(str(cell))}</td>"
                        for cell in (
                            f"{service.name} ({kind})",
                            rpc.name + extra,
                            f"{rpc.input.DESCRIPTOR.full_name} → {rpc.output.DESCRIPTOR.full_name}",
                            rpc.streaming,
                            routes,
                        )
                    )
                    + "</tr>"
                )
        messages = ", ".join(html.escape(n) for n in self.messages) or "none"
        table = (
            "<table><tr><th>service</th><th>rpc</th><th>types</th><th>mode</th><th>HTTP</th></tr>"
            + "".join(rows)
            + "</table>"
            if rows
            else ""
        )
        warnings = "".join(f"<div>⚠ {html.escape(w)}</div>" for w in self.warnings)
        return (
            f"<div><b>{html.escape(self.name)}</b> (package {html.escape(self.package) or '-'})"
            f"<div>messages: {messages}</div>{table}{warnings}</div>"
        )
