"""spawn_lab: run, watch and debug a Spawn actor mesh inside a Jupyter kernel.

Importing this package loads neither ipywidgets, grpc nor matplotlib; those load when used.
"""

from spawn_lab.core.acl import Policy
from spawn_lab.core.clock import ManualClock, RealClock
from spawn_lab.core.errors import (
    AccessDeniedError,
    ActionNotFoundError,
    ActorNotFoundError,
    ConflictError,
    CorruptStateError,
    InvocationError,
    InvocationTimeoutError,
    RegistrationError,
    SpawnLabError,
    StoreError,
    SystemStateError,
)
from spawn_lab.core.model import (
    NOOP,
    ActorId,
    Broadcast,
    Channel,
    Forward,
    Kind,
    Pipe,
    ProjectionSubject,
    SideEffect,
    Value,
    ViewSpec,
)
from spawn_lab.core.trace import EventKind, TraceEvent
from spawn_lab.runtime.actors import Actor, Context
from spawn_lab.runtime.refs import ActorRef
from spawn_lab.runtime.system import ActorSystem, StepResult

__all__ = (
    "NOOP",
    "AccessDeniedError",
    "ActionNotFoundError",
    "Actor",
    "ActorId",
    "ActorNotFoundError",
    "ActorRef",
    "ActorSystem",
    "Broadcast",
    "Channel",
    "ConflictError",
    "Context",
    "CorruptStateError",
    "EventKind",
    "Forward",
    "InvocationError",
    "InvocationTimeoutError",
    "Kind",
    "ManualClock",
    "Pipe",
    "Policy",
    "ProjectionSubject",
    "RealClock",
    "RegistrationError",
    "SideEffect",
    "SpawnLabError",
    "StepResult",
    "StoreError",
    "SystemStateError",
    "TraceEvent",
    "Value",
    "ViewSpec",
)

__version__ = "0.1.0"
