"""``ProtoRegistry``: the compiled proto files of a process, and the payload types they define.

Type URLs are process-wide (``type.googleapis.com/example.Point`` means one message wherever it
travels), so the registry that feeds :mod:`spawn_lab.protocol.payloads` is one per process, like
protobuf's default pool: :func:`default_registry`. Separate registries (``payload_types=False``)
serve tests and tools that must not touch it.

Readers (servers on other threads) take :attr:`ProtoRegistry.index`, an immutable snapshot that
a compile swaps in whole, so a call never sees half of a re-compiled file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from spawn_lab.core.model import ActorSettings

if TYPE_CHECKING:
    from spawn_lab.protobuf.compiled import CompiledProto
    from spawn_lab.protobuf.services import ActorService, RpcMethod

__all__ = ("ProtoIndex", "ProtoRegistry", "default_registry")

_TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True, slots=True)
class ProtoIndex:
    """A consistent view of the registry: actor services and their rpcs, newest file winning."""

    version: int = 0
    services: dict[str, ActorService] = field(default_factory=dict)
    methods: dict[str, RpcMethod] = field(default_factory=dict)
    actors: dict[str, ActorService] = field(default_factory=dict)
    pools: tuple[descriptor_pool.DescriptorPool, ...] = ()


class ProtoRegistry:
    """Compiled proto files by file name. Adding a file of a known name replaces it cleanly."""

    def __init__(self, *, payload_types: bool = False) -> None:
        self._files: dict[str, CompiledProto] = {}
        self._lock = threading.Lock()
        self._payload_types = payload_types
        self._installed: dict[str, type[Message]] = {}
        self.index = ProtoIndex()

    # -- files ------------------------------------------------------------------------------------

    def add(self, compiled: CompiledProto) -> None:
        """Register (or replace) ``compiled.name`` and re-index; payload types follow."""
        with self._lock:
            self._files.pop(compiled.name, None)
            self._files[compiled.name] = compiled
            self._reindex()

    def remove(self, name: str) -> None:
        """Forget a file; its types stop resolving as payloads (unless another file has them)."""
        with self._lock:
            if self._files.pop(name, None) is not None:
                self._reindex()

    def get(self, name: str) -> CompiledProto | None:
        return self._files.get(name)

    def sources(self) -> dict[str, str]:
        """File name to proto text of every file, so a new file can import earlier ones."""
        return {name: compiled.text for name, compiled in self._files.items()}

    def __iter__(self) -> Iterator[CompiledProto]:
        return iter(list(self._files.values()))

    def __len__(self) -> int:
        return len(self._files)

    # -- lookups ----------------------------------------------------------------------------------

    def method(self, path: str) -> RpcMethod | None:
        """The rpc at gRPC path ``/package.Service/Method`` of an actor service, if any."""
        return self.index.methods.get(path)

    def service_for_actor(self, actor: str) -> ActorService | None:
        """The actor service whose actor name (the camelized service name) is ``actor``."""
        return self.index.actors.get(actor)

    def settings_for(self, actor: str) -> ActorSettings | None:
        """§9.2: the settings a proto declares for ``actor``, which override registered ones."""
        from spawn_lab.protobuf.services import actor_kwargs

        service = self.service_for_actor(actor)
        if service is None or service.options is None:
            return None
        return ActorSettings(**actor_kwargs(service.options))

    # -- internals --------------------------------------------------------------------------------

    def _reindex(self) -> None:
        services: dict[str, ActorService] = {}
        types: dict[str, type[Message]] = {}
        for compiled in self._files.values():  # oldest first, so the newest file wins
            for service in compiled.services.values():
                if service.is_actor:
                    services[service.full_name] = service
            for full_name, cls in compiled.messages.items():
                types[_TYPE_URL_PREFIX + full_name] = cls
        self.index = ProtoIndex(
            version=self.index.version + 1,
            services=services,
            methods={m.path: m for s in services.values() for m in s.methods.values()},
            actors={s.actor: s for s in services.values()},
            pools=tuple(c.pool for c in reversed(self._files.values())),
        )
        if self._payload_types:
            self._install(types)

    def _install(self, types: dict[str, type[Message]]) -> None:
        """Point payload decoding at ``types``; retract what we installed and no longer define.

        Types the default pool defines keep their generated classes (a cell that re-declares
        ``spawn.JSONType`` must not change how every payload decodes).
        """
        from spawn_lab.protocol import payloads

        default = descriptor_pool.Default()
        installed: dict[str, type[Message]] = {}
        for url, cls in types.items():
            try:
                default.FindMessageTypeByName(url[len(_TYPE_URL_PREFIX) :])
            except KeyError:
                installed[url] = cls
        withdrawn: dict[str, type[Message] | None] = {
            url: None for url in self._installed if url not in installed
        }
        payloads.register_types({**withdrawn, **installed})
        self._installed = installed


_default: ProtoRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ProtoRegistry:
    """The process's registry: ``%%proto`` and :func:`compile_proto` use it; it feeds payloads."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ProtoRegistry(payload_types=True)
        return _default
