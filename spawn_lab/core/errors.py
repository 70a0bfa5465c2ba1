"""The one tree of errors spawn_lab raises, so callers can catch exactly what they mean.

```
SpawnLabError
 +-- ActorNotFoundError        no actor (or template) of that name in the system
 +-- ActionNotFoundError       the actor exists but has no such action
 +-- InvocationError           the handler raised; carries the handler's traceback text
 |    +-- AccessDeniedError    an ACL policy refused the caller
 +-- InvocationTimeoutError    no answer within the invocation's timeout
 +-- RegistrationError         an invalid name, setting or definition
 +-- SystemStateError          the system is closed, paused (for a blocking call) or draining
 +-- PayloadError              a payload or state cannot be encoded or decoded
 +-- ProtocolError             bytes that do not decode as the expected Spawn message
 |    +-- RemoteProtocolError  ... sent by a remote peer (SDK, proxy, user function)
 +-- StoreError                the state store failed; names the actor where there is one
      +-- CorruptStateError    a stored row cannot be decoded or decrypted
      +-- ConflictError        another writer changed the actor's state first
```

Every message names the offending value with ``!r``; adapters raise these ``from`` the original.
"""

from __future__ import annotations

__all__ = (
    "AccessDeniedError",
    "ActionNotFoundError",
    "ActorNotFoundError",
    "ConflictError",
    "CorruptStateError",
    "InvocationError",
    "InvocationTimeoutError",
    "PayloadError",
    "ProtocolError",
    "RegistrationError",
    "RemoteProtocolError",
    "SpawnLabError",
    "StoreError",
    "SystemStateError",
)


class SpawnLabError(Exception):
    """Base class of every error spawn_lab raises on purpose."""


class ActorNotFoundError(SpawnLabError):
    """No actor or template of that name is registered in the system."""


class ActionNotFoundError(SpawnLabError):
    """The actor exists, but it has no action of that name."""


class InvocationError(SpawnLabError):
    """A handler raised. ``remote_traceback`` holds the handler's traceback text.

    ``actor``, ``action`` and ``invocation`` (the id in the trace) say which call failed.
    """

    def __init__(
        self,
        message: str,
        remote_traceback: str = "",
        *,
        actor: str = "",
        action: str = "",
        invocation: int = 0,
    ) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback
        self.actor = actor
        self.action = action
        self.invocation = invocation

    def __str__(self) -> str:
        base = super().__str__()
        return (
            f"{base}\n\nHandler traceback:\n{self.remote_traceback}"
            if self.remote_traceback
            else base
        )


class AccessDeniedError(InvocationError):
    """An access-control policy refused this caller for this action (§10.1)."""


class InvocationTimeoutError(SpawnLabError):
    """An invocation got no answer within its timeout."""


class RegistrationError(SpawnLabError):
    """An invalid actor name, setting or definition."""


class SystemStateError(SpawnLabError):
    """The system cannot take this call in its current state (closed, paused, draining)."""


class PayloadError(SpawnLabError):
    """A payload or state value cannot be packed into, or unpacked from, a protobuf Any."""


class ProtocolError(SpawnLabError):
    """Bytes that do not decode as the Spawn message they should be."""


class RemoteProtocolError(ProtocolError):
    """A remote peer (SDK, proxy or user function) sent something we cannot use."""


class StoreError(SpawnLabError):
    """The state store failed. ``actor`` names the actor concerned, where there is one."""

    def __init__(self, message: str, actor: str | None = None) -> None:
        super().__init__(message)
        self.actor = actor


class CorruptStateError(StoreError):
    """A stored state row cannot be decoded or decrypted."""


class ConflictError(StoreError):
    """Another writer saved a newer revision of the actor first (optimistic check failed)."""
