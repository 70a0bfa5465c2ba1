"""The pure actor engine: Spawn's semantics as a state machine from events to effects.

Inputs are method calls with ``now`` passed in (``submit``, ``completed``, ``loaded``,
``advance``, ``step``); outputs are lists of effects (:mod:`spawn_lab.core.effects`) for the
driver to perform. Nothing here awaits, sleeps, reads a clock or draws a random number, so the
same inputs always give the same effects: that is what makes stepping, virtual time, replay and
fast synchronous tests possible. The caller must serialise calls (the runtime holds one lock).

Semantics follow ``spawn-spec.md`` §§3-7 with the *intended* behaviour where §12 lists a
defect; ``docs/compat.md`` lists each divergence.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, cast

from spawn_lab.core.acl import Policy, authorized
from spawn_lab.core.effects import Invocation, Load, Reply, Run, Save, Status, Upsert, Via
from spawn_lab.core.errors import (
    AccessDeniedError,
    ActionNotFoundError,
    ActorNotFoundError,
    InvocationError,
    RegistrationError,
    SpawnLabError,
    StoreError,
    SystemStateError,
)
from spawn_lab.core.model import (
    DEFAULT_ACTIONS,
    NOOP,
    RESTORE_ACTION,
    ActorDefinition,
    ActorId,
    Broadcast,
    Kind,
    Value,
    validate_name,
)
from spawn_lab.core.trace import EventKind, TraceBus

__all__ = ("ActorInfo", "Engine")

Effect = Run | Reply | Load | Save | Upsert

_TIMER, _SCHEDULED, _IDLE, _SNAPSHOT = "timer", "scheduled", "idle", "snapshot"
# enum members bound once: on Python 3.11 each ``EventKind.X`` lookup costs ~0.1 µs, and these
# are looked up on every invocation
_INVOKE, _STATE, _REPLY = EventKind.INVOKE, EventKind.STATE, EventKind.REPLY
_INIT, _PROJECTION = Via.INIT, Kind.PROJECTION
_DEFAULT_IDLE_MS = 10_000


class _Entity:
    """A live activation of an actor: its state and mailbox. Deadlines hold the entity itself
    and check on firing that it is still the live activation of its key."""

    __slots__ = (
        "busy",
        "defn",
        "dirty",
        "id",
        "key",
        "last_active",
        "loading",
        "mailbox",
        "revision",
        "snapshot_armed",
        "state",
        "tags",
    )

    def __init__(self, key: str, actor_id: ActorId, defn: ActorDefinition) -> None:
        self.key = key
        self.id = actor_id
        self.defn = defn
        self.state: object = defn.initial_state
        self.tags: Mapping[str, str] = dict(defn.initial_tags)
        self.revision = 0
        self.dirty = False
        self.busy: Invocation | None = None
        self.loading = False
        self.mailbox: deque[Invocation] | None = None
        self.last_active = 0.0
        self.snapshot_armed = False


class _Fact:
    """A state change of a sourceable actor (Spawn's ``Fact``), kept for its retention time."""

    __slots__ = (
        "action",
        "metadata",
        "retention_ms",
        "seq",
        "source",
        "source_id",
        "state",
        "time",
    )

    def __init__(
        self,
        seq: int,
        time: float,
        source: str,
        action: str,
        state: object,
        source_id: ActorId,
        metadata: Mapping[str, str],
        retention_ms: int | None,
    ) -> None:
        self.seq = seq
        self.time = time
        self.source = source
        self.action = action
        self.state = state
        self.source_id = source_id
        self.metadata = metadata
        self.retention_ms = retention_ms

    def expired(self, now: float) -> bool:
        return self.retention_ms is not None and self.time + self.retention_ms / 1000 < now


class ActorInfo:
    """A read-only summary of one actor, for listings and the UI."""

    __slots__ = ("active", "actor_id", "busy", "kind", "mailbox", "revision", "template")

    def __init__(
        self,
        actor_id: ActorId,
        kind: Kind,
        active: bool,
        template: bool,
        revision: int = 0,
        mailbox: int = 0,
        busy: bool = False,
    ) -> None:
        self.actor_id = actor_id
        self.kind = kind
        self.active = active
        self.template = template
        self.revision = revision
        self.mailbox = mailbox
        self.busy = busy

    def __repr__(self) -> str:
        status = "active" if self.active else ("template" if self.template else "passive")
        return f"<ActorInfo {self.actor_id.name} {self.kind.name} {status}>"


class Engine:
    """All actors of one system. Call it under one lock; perform the effects it returns in order."""

    def __init__(
        self, system: str, trace: TraceBus | None = None, *, catch_up: bool = False
    ) -> None:
        self.system = validate_name("system", system)
        self.trace = trace if trace is not None else TraceBus()
        self.catch_up = catch_up
        self.durable = False
        self.paused = False
        #: set when a new earliest deadline appears; the driver clears it when it re-arms
        self.wake = False
        self.breakpoints: set[tuple[str, str]] = set()
        self.policies: list[Policy] = []
        self._defs: dict[str, ActorDefinition] = {}
        self._instances: dict[str, str] = {}
        self._spawn_revisions: dict[str, int] = {}
        self._spawn_details: dict[str, dict[str, str]] = {}  # one SPAWN detail per template
        self._entities: dict[str, _Entity] = {}
        self._pools: dict[str, list[_Entity]] = {}
        self._subs: dict[str, list[tuple[str, str]]] = {}
        self._subjects: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._facts: dict[str, deque[_Fact]] = {}
        self._fact_seq = itertools.count(1)
        self._fact_cursor: dict[str, int] = {}  # projection -> last fact seq delivered to it
        self._deadlines: list[tuple[float, int, str, Any]] = []
        self._timers: set[tuple[str, str]] = set()
        self._held: deque[Invocation] = deque()
        self._running = 0
        self._loading = 0
        self._queued = 0
        self._ids = itertools.count(1)
        self._seq = itertools.count()

    # -- registration -------------------------------------------------------------------------

    def register(self, defn: ActorDefinition, now: float) -> list[Effect]:
        """Register or replace a definition. Live activations switch to it for their next message.

        Stateful NAMED, TASK and PROJECTION actors are activated at once (Spawn's warm-up, §2).
        """
        previous = self._defs.get(defn.name)
        self._defs[defn.name] = defn
        self.trace.emit(
            now, EventKind.REGISTER, 0, 0, defn.name, "", {"kind": defn.settings.kind.name}
        )
        out: list[Effect] = []
        for entity in self._live(defn.name):
            entity.defn = defn
            self._arm_timers(entity, now)
            self._subscribe(entity)
        if previous is None and self._warms(defn) and defn.name not in self._entities:
            self._activate(defn.name, ActorId(defn.name, self.system), defn, now, out)
        if defn.settings.kind is Kind.PROJECTION:
            self._follow_subjects(defn, now, out)
        return out

    def definition(self, name: str) -> ActorDefinition | None:
        """The definition that serves ``name`` (its template's, for a spawned instance)."""
        defn = self._defs.get(name)
        if defn is None and name in self._instances:
            defn = self._defs.get(self._instances[name])
        return defn

    def spawn(self, actor_id: ActorId, now: float, revision: int = 0) -> None:
        """Register instance ``actor_id.name`` of template ``actor_id.parent`` (§3.3); lazy."""
        validate_name("actor", actor_id.name)
        template = self._defs.get(actor_id.parent)
        if template is None or template.settings.kind is not Kind.UNNAMED:
            known = sorted(n for n, d in self._defs.items() if d.settings.kind is Kind.UNNAMED)
            raise ActorNotFoundError(
                f"cannot spawn {actor_id.name!r}: no UNNAMED template {actor_id.parent!r} in "
                f"system {self.system!r} (templates: {', '.join(known) or 'none'})"
            )
        if actor_id.name in self._defs:
            raise RegistrationError(
                f"cannot spawn {actor_id.name!r}: a registered actor already has that name"
            )
        if self._instances.get(actor_id.name) != actor_id.parent:
            parent = template.name  # the template's own string, shared by all its instances
            self._instances[actor_id.name] = parent
            detail = self._spawn_details.setdefault(parent, {"parent": parent})
            self.trace.emit(now, EventKind.SPAWN, 0, 0, actor_id.name, "", detail)
        if revision:
            self._spawn_revisions[actor_id.name] = revision

    # -- invocation -----------------------------------------------------------------------------

    def new_id(self) -> int:
        """A fresh invocation id; ids are a counter so that replays are identical."""
        return next(self._ids)

    def submit(self, inv: Invocation, now: float) -> list[Effect]:
        """Accept an invocation from outside; raise at once for unknown actors or actions."""
        out: list[Effect] = []
        try:
            self._accept(inv, now, out)
        except SpawnLabError as exc:  # the refused call still shows up in the trace
            self.trace.emit(now, EventKind.FAIL, inv.id, inv.cause, inv.actor, inv.action, str(exc))
            raise
        return out

    def completed(
        self, inv: Invocation, outcome: Value | BaseException, now: float
    ) -> list[Effect]:
        """A Run finished: apply the state, run the workflow, reply, and start the next message."""
        out: list[Effect] = []
        entity: _Entity = inv.entity
        entity.busy = None
        entity.last_active = now
        self._running -= 1
        if isinstance(outcome, BaseException):
            self._fail(inv, outcome, now, out)
        else:
            self._apply(entity, inv, outcome, now, out)
        if entity.mailbox is not None:
            self._pump(entity, now, out)
        return out

    def loaded(
        self,
        entity_key: str,
        snapshot: tuple[object, Mapping[str, str], int] | None,
        error: BaseException | None,
        now: float,
        *,
        rewound: bool = False,
    ) -> list[Effect]:
        """The store answered a Load: start from that snapshot, or fail the waiting messages.

        ``rewound`` means the state is an older revision than the latest stored one (a spawn
        at a revision, §6.5) while ``snapshot``'s revision is the latest: the actor goes on
        from there, and its rewound state is saved as a new revision, never over history.
        """
        out: list[Effect] = []
        entity = self._entities.get(entity_key)
        self._loading -= 1
        if entity is None:
            return out
        entity.loading = False
        if error is not None:
            self.trace.emit(now, EventKind.FAIL, 0, 0, entity.id.name, "", {"error": str(error)})
            self._drop_entity(entity, now)
            for inv in entity.mailbox or ():
                self._queued -= 1
                self._answer(inv, False, NOOP, error, now, out)
            entity.mailbox = None
            return out
        if snapshot is not None:
            entity.state, tags, entity.revision = snapshot
            entity.tags = dict(tags)
            if rewound and entity.defn.settings.stateful:
                entity.dirty = True
                self._arm_snapshot(entity, now)
        self._after_load(entity, now, out)
        return out

    def save_failed(
        self, entity_key: str, error: BaseException, now: float, *, conflict: bool = False
    ) -> list[Effect]:
        """A save failed. A full disk or a lost connection keeps the state dirty for a retry;
        a conflict (another writer stored a newer revision) reloads the actor from the store,
        so it continues from the other writer's state instead of overwriting it."""
        out: list[Effect] = []
        entity = self._entities.get(entity_key)
        self.trace.emit(
            now, EventKind.FAIL, 0, 0, entity_key, "", {"error": str(error), "save": True}
        )
        if entity is None:
            return out
        if conflict:
            entity.dirty = False
            if not entity.loading:
                entity.loading = True
                self._loading += 1
                out.append(Load(entity.id, entity.key))
        else:
            entity.dirty = True
            self._arm_snapshot(entity, now)
        return out

    # -- time -------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``advance`` next has something to do, or ``None``."""
        return self._deadlines[0][0] if self._deadlines else None

    def advance(self, now: float, limit: int | None = None) -> list[Effect]:
        """Fire every deadline due at ``now`` (at most ``limit`` of them), in time order."""
        out: list[Effect] = []
        fired = 0
        while self._deadlines and self._deadlines[0][0] <= now and (limit is None or fired < limit):
            when, _, what, data = heapq.heappop(self._deadlines)
            fired += 1
            if what == _TIMER:
                self._fire_timer(data, when, now, out)
            elif what == _SCHEDULED:
                self._deliver_or_hold(data, now, out)
            elif what == _IDLE:
                self._check_idle(data, now, out)
            else:
                self._snapshot(data, now, out)
        return out

    # -- stepping -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Hold every new message until :meth:`step` or :meth:`resume`."""
        self.paused = True

    def resume(self, now: float) -> list[Effect]:
        """Deliver everything held, in arrival order, and stop holding."""
        self.paused = False
        out: list[Effect] = []
        while self._held:
            self._deliver(self._held.popleft(), now, out)
        return out

    def step(self, now: float) -> tuple[Invocation | None, list[Effect]]:
        """Deliver exactly one held message (the oldest); ``(None, [])`` if none is held."""
        out: list[Effect] = []
        if not self._held:
            return None, out
        inv = self._held.popleft()
        self._deliver(inv, now, out)
        return inv, out

    def held(self) -> list[Invocation]:
        """The messages waiting for a step, oldest first."""
        return list(self._held)

    def is_held(self, inv: Invocation) -> bool:
        return inv in self._held

    @property
    def idle(self) -> bool:
        """No handler running, no load pending and no message queued (held ones aside)."""
        return not (self._running or self._loading or self._queued)

    # -- inspection -------------------------------------------------------------------------------

    def actors(self) -> list[ActorInfo]:
        """Every registered actor, template and spawned instance, active or not."""
        infos: list[ActorInfo] = []
        for name, defn in self._defs.items():
            entity = self._entities.get(name)
            pool = self._pools.get(name)
            kind = defn.settings.kind
            infos.append(
                ActorInfo(
                    ActorId(name, self.system),
                    kind,
                    active=entity is not None or bool(pool),
                    template=kind is Kind.UNNAMED,
                    revision=entity.revision if entity else 0,
                    mailbox=self._queued_for(name),
                    busy=bool(entity and entity.busy),
                )
            )
        for name, parent in self._instances.items():
            entity = self._entities.get(name)
            infos.append(
                ActorInfo(
                    ActorId(name, self.system, parent),
                    Kind.UNNAMED,
                    active=entity is not None,
                    template=False,
                    revision=entity.revision if entity else 0,
                    mailbox=self._queued_for(name),
                    busy=bool(entity and entity.busy),
                )
            )
        return infos

    def state_of(self, name: str) -> tuple[object, Mapping[str, str], int] | None:
        """In-memory ``(state, tags, revision)`` of an active actor, or ``None`` if not active."""
        entity = self._entities.get(name)
        if entity is None:
            return None
        return entity.state, dict(entity.tags), entity.revision

    def mailbox_of(self, name: str) -> list[Invocation]:
        """Messages queued for ``name`` (all replicas of a pool), plus the one running first."""
        result: list[Invocation] = []
        for entity in self._live(name):
            if entity.busy is not None:
                result.append(entity.busy)
            result.extend(entity.mailbox or ())
        return result

    def deactivate(self, name: str, now: float) -> list[Effect]:
        """Deactivate an idle actor now (saving its state), as its idle timeout would."""
        out: list[Effect] = []
        for entity in self._live(name):
            if entity.busy is None and not entity.mailbox and not entity.loading:
                self._deactivate(entity, now, out)
        return out

    def crash(self, name: str, now: float) -> list[Effect]:
        """Simulate a crash: drop the activation *without* saving. Queued messages stay queued
        and reactivate the actor from its last stored snapshot.

        Only an actor between messages can crash here: one that is running a handler or
        loading its state is refused, since its late result would land on a dead activation
        while a new one already runs (two actions in flight).
        """
        out: list[Effect] = []
        live = list(self._live(name))
        if any(e.busy is not None or e.loading for e in live):
            raise SystemStateError(
                f"actor {name!r} is running a handler or loading its state; crash it between "
                "messages (pause the system, or wait until it is idle)"
            )
        for entity in live:
            self.trace.emit(now, EventKind.FAIL, 0, 0, entity.id.name, "", "crash injected")
            self._drop_entity(entity, now)
            queued = entity.mailbox or ()
            entity.mailbox = None
            for inv in queued:
                self._queued -= 1
                self._deliver(inv, now, out)
        return out

    def flush(self, now: float, status: Status = Status.DEACTIVATED) -> list[Effect]:
        """Save every dirty stateful actor (on close), durably."""
        out: list[Effect] = []
        for entity in self._all_entities():
            if entity.defn.settings.stateful and (entity.dirty or status is Status.DEACTIVATED):
                self._save(entity, now, out, status, durable=True)
        return out

    # -- internals: acceptance and delivery -----------------------------------------------------

    def _accept(self, inv: Invocation, now: float, out: list[Effect]) -> None:
        if inv.register_ref:
            self.spawn(ActorId(inv.actor, self.system, inv.register_ref), now)
        entity = self._entities.get(inv.actor)
        defn = entity.defn if entity is not None else self._resolve(inv.actor)
        action = inv.action
        if (
            action not in defn.run_kinds
            and action not in DEFAULT_ACTIONS
            and action != RESTORE_ACTION
        ):
            raise ActionNotFoundError(
                f"action {action!r} not found for actor {inv.actor!r}; its actions are: "
                f"{', '.join(defn.all_actions()) or '(none)'} (and the built-in get/getState)"
            )
        trace = self.trace
        trace.record(
            (
                next(trace.seq),
                now,
                _INVOKE,
                inv.id,
                inv.cause,
                inv.actor,
                action,
                (
                    inv.via,
                    inv.caller.name if inv.caller else "",
                    inv.asynchronous,
                    inv.payload,
                    inv.metadata,
                ),
            )
        )
        if inv.scheduled_to > now:
            self._push(inv.scheduled_to, _SCHEDULED, inv)
            self.trace.emit(
                now, EventKind.SCHEDULE, inv.id, inv.cause, inv.actor, action, inv.scheduled_to
            )
        elif (
            entity is not None
            and entity.busy is None
            and not entity.loading
            and not entity.mailbox
            and not self.paused
            and not self.breakpoints
        ):
            self._start(entity, inv, now, out, queued=False)  # the common case, in short
        else:
            self._deliver_or_hold(inv, now, out)

    def _deliver_or_hold(self, inv: Invocation, now: float, out: list[Effect]) -> None:
        if self.breakpoints and not self.paused and self._breaks(inv):
            self.paused = True
            self.trace.emit(now, EventKind.BREAKPOINT, inv.id, inv.cause, inv.actor, inv.action)
        if self.paused:
            self._held.append(inv)
        else:
            self._deliver(inv, now, out)

    def _breaks(self, inv: Invocation) -> bool:
        points = self.breakpoints
        return (
            (inv.actor, inv.action) in points
            or (inv.actor, "*") in points
            or ("*", inv.action) in points
        )

    def _resolve(self, name: str) -> ActorDefinition:
        defn = self.definition(name)
        if defn is None:
            raise ActorNotFoundError(f"actor {name!r} not found on actor system {self.system!r}")
        return defn

    def _deliver(self, inv: Invocation, now: float, out: list[Effect]) -> None:
        entity = self._entities.get(inv.actor)
        if entity is None:
            try:
                defn = self._resolve(inv.actor)
            except SpawnLabError as exc:
                self._answer(inv, False, NOOP, exc, now, out)
                return
            if defn.settings.kind is Kind.POOLED:
                entity = self._pick_replica(defn, now, out)
            else:
                parent = self._instances.get(inv.actor, "")
                entity = self._activate(
                    inv.actor, ActorId(inv.actor, self.system, parent), defn, now, out
                )
        if entity.busy is None and not entity.loading and not entity.mailbox:
            self._start(entity, inv, now, out, queued=False)
        else:
            if entity.mailbox is None:
                entity.mailbox = deque()
            entity.mailbox.append(inv)
            self._queued += 1

    def _pump(self, entity: _Entity, now: float, out: list[Effect]) -> None:
        mailbox = entity.mailbox
        while mailbox and entity.busy is None and not entity.loading:
            self._queued -= 1
            self._start(entity, mailbox.popleft(), now, out)
        if mailbox is not None and not mailbox:
            entity.mailbox = None

    def _start(
        self, entity: _Entity, inv: Invocation, now: float, out: list[Effect], queued: bool = True
    ) -> None:
        """Start a message. DELIVER is traced only for one that waited: otherwise INVOKE says it."""
        defn = entity.defn
        action = inv.action
        inv.entity = entity
        if action == RESTORE_ACTION and not defn.has_action(action):
            self._restore(entity, inv, now, out)
            return
        if self.policies and not authorized(self.policies, inv.caller, action):
            caller = inv.caller.name if inv.caller else "an external caller"
            denied = AccessDeniedError(
                f"access denied: {caller} may not invoke {entity.id.name}.{action}"
            )
            self._answer(inv, False, NOOP, denied, now, out)
            return
        kind = defn.run_kinds.get(action)
        if kind is None:
            if action in DEFAULT_ACTIONS:
                self.trace.emit(now, EventKind.DELIVER, inv.id, inv.cause, entity.id.name, action)
                self._answer(inv, True, entity.state, None, now, out)
                return
            error = ActionNotFoundError(
                f"action {action!r} not found for actor {entity.id.name!r} (its definition "
                f"changed); its actions are: {', '.join(defn.all_actions()) or '(none)'}"
            )
            self._answer(inv, False, NOOP, error, now, out)
            return
        entity.busy = inv
        self._running += 1
        if queued:
            self.trace.emit(now, EventKind.DELIVER, inv.id, inv.cause, entity.id.name, action)
        out.append(Run(inv, entity.id, defn, entity.state, entity.tags, kind, entity.key))

    def _answer(
        self,
        inv: Invocation,
        ok: bool,
        value: object,
        error: BaseException | None,
        now: float,
        out: list[Effect],
    ) -> None:
        if ok:
            trace = self.trace
            trace.record(
                (next(trace.seq), now, _REPLY, inv.id, inv.cause, inv.actor, inv.action, (value,))
            )
        else:
            self.trace.emit(
                now, EventKind.FAIL, inv.id, inv.cause, inv.actor, inv.action, str(error)
            )
        if inv.waiter is not None:
            out.append(Reply(inv.waiter, inv.id, ok, value, error))

    def _fail(self, inv: Invocation, error: BaseException, now: float, out: list[Effect]) -> None:
        if inv.via is Via.INIT:
            self.trace.emit(
                now, EventKind.FAIL, inv.id, inv.cause, inv.actor, inv.action, str(error)
            )
            return
        self._answer(inv, False, NOOP, error, now, out)

    # -- internals: results and workflows ---------------------------------------------------------

    def _apply(
        self, entity: _Entity, inv: Invocation, value: Value, now: float, out: list[Effect]
    ) -> None:
        changed = value.changes_state
        if changed:
            entity.state = state = value.state
            entity.dirty = True
            trace = self.trace
            trace.record(
                (next(trace.seq), now, _STATE, inv.id, inv.cause, entity.id.name, inv.action, state)
            )
        if value.tags is not None:
            entity.tags = dict(value.tags)
        settings = entity.defn.settings
        if settings.stateful:
            self._persist_after(entity, value, inv, now, out)
        if inv.via is _INIT:
            self.trace.emit(now, EventKind.REPLY, inv.id, inv.cause, inv.actor, inv.action)
            return
        if changed and (settings.sourceable or settings.kind is _PROJECTION):
            self._after_state_change(entity, inv, now, out)
        if value.effects or value.broadcast or value.pipe or value.forward:
            self._workflow(entity, inv, value, now, out)
        else:
            self._answer(inv, True, value.reply, None, now, out)

    def _workflow(
        self, entity: _Entity, inv: Invocation, value: Value, now: float, out: list[Effect]
    ) -> None:
        """Side effects, then the broadcast, then the reply or the route (spec §5.4)."""
        source = ActorId(entity.id.name, self.system)
        for effect in value.effects:
            metadata = {**inv.metadata, **effect.metadata} if effect.metadata else inv.metadata
            hop = Invocation(
                self.new_id(),
                effect.actor,
                effect.action,
                effect.payload,
                caller=source,
                metadata=metadata,
                asynchronous=True,
                via=Via.EFFECT,
                cause=inv.id,
                register_ref=effect.register_ref,
                scheduled_to=now + effect.delay_ms / 1000 if effect.delay_ms else 0.0,
            )
            self._internal(hop, now, out)
        if value.broadcast is not None:
            self._broadcast(entity, inv, value.broadcast, now, out)
        route = value.pipe or value.forward
        if route is None:
            self._answer(inv, True, value.reply, None, now, out)
            return
        piped = value.pipe is not None
        hop = Invocation(
            self.new_id(),
            route.actor,
            route.action,
            value.reply if piped else inv.payload,
            caller=source,
            metadata=inv.metadata,
            asynchronous=inv.asynchronous,
            via=Via.PIPE if piped else Via.FORWARD,
            cause=inv.id,
            register_ref=route.register_ref,
            waiter=inv.waiter,
        )
        self.trace.emit(now, EventKind.REPLY, inv.id, inv.cause, inv.actor, inv.action, "routed")
        try:
            self._accept(hop, now, out)
        except SpawnLabError as exc:
            self._answer(hop, False, NOOP, exc, now, out)

    def _internal(self, inv: Invocation, now: float, out: list[Effect]) -> None:
        """Submit a message the mesh made itself; an unknown target is traced, not raised."""
        try:
            self._accept(inv, now, out)
        except SpawnLabError as exc:
            self.trace.emit(now, EventKind.DROP, inv.id, inv.cause, inv.actor, inv.action, str(exc))

    def _broadcast(
        self, entity: _Entity, inv: Invocation, broadcast: Broadcast, now: float, out: list[Effect]
    ) -> None:
        topic = broadcast.channel
        subscribers = self._subs.get(topic, ())
        self.trace.emit(
            now, EventKind.BROADCAST, inv.id, inv.cause, entity.id.name, topic, len(subscribers)
        )
        for actor, action in subscribers:
            hop = Invocation(
                self.new_id(),
                actor,
                broadcast.action or action,
                broadcast.payload,
                caller=entity.id,
                asynchronous=True,
                via=Via.BROADCAST,
                cause=inv.id,
            )
            self._internal(hop, now, out)

    # -- internals: restore and projections ---------------------------------------------------

    def _restore(self, entity: _Entity, inv: Invocation, now: float, out: list[Effect]) -> None:
        """Make an old state current again, as a new revision; history is never rewritten."""
        if not entity.defn.settings.stateful:
            error = RegistrationError(f"actor {entity.id.name!r} is stateless: nothing to restore")
            self._answer(inv, False, NOOP, error, now, out)
            return
        state, tags = cast(tuple[object, Mapping[str, str]], inv.payload)
        entity.state = state
        entity.tags = dict(tags)
        entity.dirty = True
        self.trace.emit(now, EventKind.STATE, inv.id, inv.cause, entity.id.name, inv.action, state)
        self._save(entity, now, out, Status.ACTIVATED, durable=True, invocation=inv.id)
        self._answer(inv, True, entity.revision, None, now, out)

    def _after_state_change(
        self, entity: _Entity, inv: Invocation, now: float, out: list[Effect]
    ) -> None:
        settings = entity.defn.settings
        if settings.kind is Kind.PROJECTION and inv.action not in entity.defn.views:
            out.append(Upsert(entity.id, entity.state, settings.state_type))
        if settings.sourceable:
            self._publish_fact(entity, inv, now, out)

    def _publish_fact(
        self, entity: _Entity, inv: Invocation, now: float, out: list[Effect]
    ) -> None:
        """Record a Fact of the new state and deliver it to every projection that follows it."""
        source = entity.id.parent or entity.id.name
        retention = entity.defn.settings.events_retention_ms
        fact = _Fact(
            next(self._fact_seq),
            now,
            source,
            inv.action,
            entity.state,
            entity.id,
            inv.metadata,
            retention,
        )
        log = self._facts.setdefault(source, deque())
        log.append(fact)
        while log and log[0].expired(now):
            log.popleft()
        for projection, action in self._subjects.get((source, inv.action), ()):
            self._deliver_fact(fact, projection, action, inv.id, now, out)

    def _deliver_fact(
        self, fact: _Fact, projection: str, action: str, cause: int, now: float, out: list[Effect]
    ) -> None:
        self._fact_cursor[projection] = max(self._fact_cursor.get(projection, 0), fact.seq)
        hop = Invocation(
            self.new_id(),
            projection,
            action,
            fact.state,
            caller=fact.source_id,
            metadata=fact.metadata,
            asynchronous=True,
            via=Via.PROJECTION,
            cause=cause,
        )
        self._internal(hop, now, out)

    def _follow_subjects(self, defn: ActorDefinition, now: float, out: list[Effect]) -> None:
        """Index a projection's subjects, then replay the retained facts it has not seen yet,
        in the order they happened (a re-registered projection gets only newer facts)."""
        for followers in self._subjects.values():
            followers[:] = [f for f in followers if f[0] != defn.name]
        wanted: dict[tuple[str, str], str] = {}
        for subject in defn.settings.subjects:
            key = (subject.actor, subject.source_action)
            self._subjects.setdefault(key, []).append((defn.name, subject.action))
            wanted.setdefault(key, subject.action)
        seen = self._fact_cursor.get(defn.name, 0)
        backlog = sorted(
            (
                fact
                for source in {actor for actor, _ in wanted}
                for fact in self._facts.get(source, ())
                if fact.seq > seen and (source, fact.action) in wanted and not fact.expired(now)
            ),
            key=lambda fact: fact.seq,
        )
        for fact in backlog:
            self._deliver_fact(fact, defn.name, wanted[(fact.source, fact.action)], 0, now, out)

    # -- internals: persistence -----------------------------------------------------------------

    def _persist_after(
        self, entity: _Entity, value: Value, inv: Invocation, now: float, out: list[Effect]
    ) -> None:
        if value.checkpoint or (self.durable and entity.dirty):
            self._save(entity, now, out, Status.ACTIVATED, durable=True, invocation=inv.id)
        elif entity.dirty and not entity.snapshot_armed:
            self._arm_snapshot(entity, now)

    def _save(
        self,
        entity: _Entity,
        now: float,
        out: list[Effect],
        status: Status,
        *,
        durable: bool,
        invocation: int = 0,
    ) -> None:
        if entity.dirty:
            entity.revision += 1
            entity.dirty = False
        out.append(
            Save(
                entity.id,
                entity.key,
                entity.revision,
                entity.state,
                dict(entity.tags),
                status,
                durable,
                entity.defn.settings.state_type,
                invocation,
            )
        )
        self.trace.emit(
            now, EventKind.SAVE, invocation, 0, entity.id.name, "", (entity.revision, status.value)
        )

    def _arm_snapshot(self, entity: _Entity, now: float) -> None:
        interval = entity.defn.settings.snapshot_interval_ms
        if entity.snapshot_armed or interval is None:
            return
        entity.snapshot_armed = True
        when = now + interval / 1000
        self._push(when, _SNAPSHOT, entity)

    def _snapshot(self, entity: _Entity, now: float, out: list[Effect]) -> None:
        if self._entities.get(entity.key) is not entity:  # deactivated (or replaced) since
            return
        entity.snapshot_armed = False
        if entity.dirty:
            self._save(entity, now, out, Status.ACTIVATED, durable=False)

    # -- internals: lifecycle -------------------------------------------------------------------

    def _warms(self, defn: ActorDefinition) -> bool:
        settings = defn.settings
        return settings.stateful and settings.kind not in (Kind.POOLED, Kind.UNNAMED)

    def _activate(
        self, key: str, actor_id: ActorId, defn: ActorDefinition, now: float, out: list[Effect]
    ) -> _Entity:
        entity = _Entity(key, actor_id, defn)
        entity.last_active = now
        self._entities[key] = entity
        self.trace.emit(now, EventKind.ACTIVATE, 0, 0, actor_id.name, "", key)
        self._subscribe(entity)
        self._arm_timers(entity, now)
        self._arm_idle(entity, now, now)
        if defn.settings.stateful:
            entity.loading = True
            self._loading += 1
            revision = self._spawn_revisions.pop(actor_id.name, 0)
            out.append(Load(actor_id, key, revision))
        else:
            self._after_load(entity, now, out)
        return entity

    def _after_load(self, entity: _Entity, now: float, out: list[Effect]) -> None:
        init = entity.defn.init_action()
        if init is not None:
            inv = Invocation(
                self.new_id(),
                entity.id.name,
                init,
                NOOP,
                caller=ActorId(entity.id.name, self.system),
                asynchronous=True,
                via=Via.INIT,
            )
            self.trace.emit(
                now,
                EventKind.INVOKE,
                inv.id,
                0,
                entity.id.name,
                init,
                (Via.INIT, "", True, NOOP, {}),
            )
            if entity.busy is None:
                self._start(entity, inv, now, out)
            else:  # reloaded while a message runs (a conflict): init goes first, after it
                if entity.mailbox is None:
                    entity.mailbox = deque()
                entity.mailbox.appendleft(inv)
                self._queued += 1
            return
        self._pump(entity, now, out)

    def _arm_idle(self, entity: _Entity, now: float, since: float) -> None:
        if entity.defn.settings.kind is Kind.PROJECTION:
            return
        timeout = entity.defn.settings.deactivate_timeout_ms
        timeout_s = (timeout if timeout is not None else _DEFAULT_IDLE_MS) / 1000
        when = max(since + timeout_s, now)
        self._push(when, _IDLE, entity)

    def _check_idle(self, entity: _Entity, now: float, out: list[Effect]) -> None:
        if self._entities.get(entity.key) is not entity:  # deactivated (or replaced) since
            return
        timeout = entity.defn.settings.deactivate_timeout_ms
        timeout_s = (timeout if timeout is not None else _DEFAULT_IDLE_MS) / 1000
        if entity.busy is not None or entity.mailbox or entity.loading:
            self._arm_idle(entity, now + timeout_s, now)
        elif now < entity.last_active + timeout_s:  # the same sum _arm_idle uses, so no float gap
            self._arm_idle(entity, now, entity.last_active)
        else:
            self._deactivate(entity, now, out)

    def _deactivate(self, entity: _Entity, now: float, out: list[Effect]) -> None:
        if entity.defn.settings.stateful:
            self._save(entity, now, out, Status.DEACTIVATED, durable=False)
        self._drop_entity(entity, now)

    def _drop_entity(self, entity: _Entity, now: float) -> None:
        self._entities.pop(entity.key, None)
        pool = self._pools.get(entity.id.name)
        if pool is not None and entity in pool:
            pool.remove(entity)
            if not pool:
                del self._pools[entity.id.name]
        self.trace.emit(now, EventKind.DEACTIVATE, 0, 0, entity.id.name, "", entity.key)

    def _pick_replica(self, defn: ActorDefinition, now: float, out: list[Effect]) -> _Entity:
        pool = self._pools.setdefault(defn.name, [])
        for replica in pool:
            if replica.busy is None and not replica.mailbox and not replica.loading:
                return replica
        if len(pool) < defn.settings.pool_size:
            index = 0
            taken = {r.key for r in pool}
            while f"{defn.name}#{index}" in taken:
                index += 1
            replica = self._activate(
                f"{defn.name}#{index}", ActorId(defn.name, self.system), defn, now, out
            )
            pool.append(replica)
            return replica
        return min(pool, key=lambda r: len(r.mailbox or ()))

    def _subscribe(self, entity: _Entity) -> None:
        """Subscribe on activation (§5.1), one entry per (topic, actor, action) (intended D21)."""
        name = entity.id.name
        for channel in entity.defn.channels:
            subs = self._subs.setdefault(channel.topic, [])
            if (name, channel.action) not in subs:
                subs.append((name, channel.action))

    def _arm_timers(self, entity: _Entity, now: float) -> None:
        name = entity.id.name
        for timer in entity.defn.timers:
            key = (name, timer.action)
            if key not in self._timers:
                self._timers.add(key)
                when = now + timer.interval_ms / 1000
                self._push(when, _TIMER, key)

    def _fire_timer(self, key: tuple[str, str], when: float, now: float, out: list[Effect]) -> None:
        name, action = key
        defn = self.definition(name)
        timer = next((t for t in defn.timers if t.action == action), None) if defn else None
        if timer is None:
            self._timers.discard(key)
            return
        inv = Invocation(
            self.new_id(),
            name,
            action,
            NOOP,
            caller=ActorId(name, self.system),
            asynchronous=True,
            via=Via.TIMER,
        )
        self.trace.emit(now, EventKind.TIMER, inv.id, 0, name, action, timer.interval_ms)
        self._internal(inv, now, out)
        interval = timer.interval_ms / 1000
        following = when + interval
        if following <= now and not self.catch_up:
            following = now + interval
        self._push(following, _TIMER, key)

    # -- internals: helpers ---------------------------------------------------------------------

    def _push(self, when: float, what: str, data: Any) -> None:
        """Add a deadline; flag ``wake`` when it is the new earliest, so the driver re-arms."""
        deadlines = self._deadlines
        if not deadlines or when < deadlines[0][0]:
            self.wake = True
        heapq.heappush(deadlines, (when, next(self._seq), what, data))

    def _live(self, name: str) -> Iterable[_Entity]:
        entity = self._entities.get(name)
        if entity is not None:
            yield entity
        yield from self._pools.get(name, ())

    def _all_entities(self) -> Iterable[_Entity]:
        return list(self._entities.values())

    def _queued_for(self, name: str) -> int:
        return sum(len(e.mailbox or ()) for e in self._live(name))


def store_error_for(actor: ActorId, exc: BaseException) -> StoreError:
    """Wrap a store failure so that the message names the actor."""
    return StoreError(f"state store failed for actor {actor.name!r}: {exc}", actor=actor.name)


def handler_error(
    actor: ActorId, action: str, exc: BaseException, traceback_text: str, invocation: int = 0
) -> InvocationError:
    """The error an asker gets when a handler raised.

    A handler that failed because a nested ask failed contributes only that error's first line
    here: the nested traceback is already in ``traceback_text``, so it is not printed twice.
    """
    detail = exc.args[0] if isinstance(exc, SpawnLabError) and exc.args else exc
    return InvocationError(
        f"{actor.name}.{action} raised {type(exc).__name__}: {detail}",
        remote_traceback=traceback_text,
        actor=actor.name,
        action=action,
        invocation=invocation,
    )
