"""The JSONL event log and its replay into a fresh system, held for stepping.

**What replay means.** A JSONL log records every trace event. :func:`replay` re-issues, in
their original order, only what came from *outside* the mesh: spawns of instances
(``spawn`` events) and external invocations (``invoke`` events whose caller is empty, sent
directly or with a delay). It sends each one with ``tell`` (an ask's reply has nobody to go
to) into a system that it first pauses, so every message is held and you deliver them one at a
time with ``system.step()`` or the lab's Step button. Everything the mesh did itself (side
effects, pipes, forwards, broadcasts, timers, init actions) is not re-sent: the handlers
re-create those hops when they run again, which is the point of replaying. The target system
must already have the same actors registered (code is not in the log); actors it lacks are
reported in :class:`ReplayResult` and skipped. Payloads and metadata are in the log only for
invocations whose payload was known when it was written (the trace bus does not keep
payloads; the lab's composer records its own, see :func:`write_jsonl`); others replay with an
empty (Noop) payload and are counted in ``ReplayResult.missing_payloads``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

from spawn_lab.core.effects import Via
from spawn_lab.core.model import NOOP
from spawn_lab.core.trace import EventKind, RawEvent, TraceEvent

if TYPE_CHECKING:
    from spawn_lab.runtime.system import ActorSystem

__all__ = (
    "FORMAT",
    "Payloads",
    "ReplayResult",
    "detail_record",
    "event_record",
    "read_jsonl",
    "replay",
    "write_jsonl",
)

#: The first line of every JSONL log: what it is, so a loader can refuse other files.
FORMAT = "spawn_lab.trace"
_VERSION = 1
#: invocation id -> (payload, metadata), for the invocations whose payload is known
Payloads = Mapping[int, tuple[object, Mapping[str, str]]]


# -- readable records ---------------------------------------------------------------------------


def event_record(event: RawEvent | TraceEvent, payloads: Payloads | None = None) -> dict[str, Any]:
    """One event as a JSON-able dict with a structured ``detail`` (the JSONL line)."""
    e = event if isinstance(event, TraceEvent) else TraceEvent.of(event)
    return {
        "seq": e.seq,
        "time": e.time,
        "kind": e.kind.value,
        "invocation": e.invocation,
        "cause": e.cause,
        "actor": e.actor,
        "action": e.action,
        "detail": detail_record(e, payloads),
    }


def detail_record(e: TraceEvent, payloads: Payloads | None) -> dict[str, Any]:
    d = e.detail
    kind = e.kind
    if kind is EventKind.INVOKE and isinstance(d, tuple) and len(d) >= 3:
        via = d[0].value if isinstance(d[0], Via) else str(d[0])
        out: dict[str, Any] = {"via": via, "caller": d[1], "asynchronous": bool(d[2])}
        known = payloads.get(e.invocation) if payloads else None
        if known is None and len(d) > 3:  # a runtime that records payloads in the event
            known = (d[3], d[4] if len(d) > 4 else {})
        if known is not None:
            out.update(_payload_fields(known[0], known[1]))
        return out
    if kind is EventKind.SAVE and isinstance(d, tuple) and len(d) == 2:
        return {"revision": d[0], "status": d[1]}
    if kind is EventKind.BROADCAST:
        return {"subscribers": d}
    if kind in (EventKind.ACTIVATE, EventKind.DEACTIVATE):
        return {"key": d}
    if kind is EventKind.SCHEDULE:
        return {"at": d}
    if kind is EventKind.TIMER:
        return {"interval_ms": d}
    if kind in (EventKind.FAIL, EventKind.DROP) and not isinstance(d, dict):
        return {"error": str(d)}
    if kind is EventKind.REPLY and d == "routed":
        return {"routed": True}
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    return {} if d is None else {"text": str(d)}


def _payload_fields(payload: object, metadata: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": dict(metadata)}
    if payload is NOOP:
        out["payload"] = None
        out["noop"] = True
        return out
    try:
        json.dumps(payload)
    except (TypeError, ValueError):
        out["payload_repr"] = repr(payload)  # not JSON: kept for people, not replayable
    else:
        out["payload"] = payload
    return out


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


# -- JSONL log and replay ---------------------------------------------------------------------


def write_jsonl(
    events: Iterable[RawEvent | TraceEvent],
    target: str | os.PathLike[str] | IO[str],
    *,
    system: str = "",
    payloads: Payloads | None = None,
) -> int:
    """Write a header line then one event per line; returns the number of events written.

    ``payloads`` maps invocation ids to ``(payload, metadata)`` for the invocations whose
    payload is known (the trace bus itself does not keep payloads).
    """
    if isinstance(target, str | os.PathLike):
        with open(target, "w", encoding="utf-8") as handle:
            return write_jsonl(events, handle, system=system, payloads=payloads)
    target.write(json.dumps({"format": FORMAT, "version": _VERSION, "system": system}) + "\n")
    count = 0
    for event in events:
        target.write(json.dumps(event_record(event, payloads), default=str) + "\n")
        count += 1
    return count


def read_jsonl(source: str | os.PathLike[str] | IO[str]) -> list[dict[str, Any]]:
    """The event records of a JSONL log (the header line checked and dropped)."""
    if isinstance(source, str | os.PathLike):
        with open(source, encoding="utf-8") as handle:
            return read_jsonl(handle)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} of the trace log is not JSON: {exc}") from exc
        if number == 1:
            if record.get("format") != FORMAT:
                raise ValueError(f"not a spawn_lab trace log: first line is {line.strip()[:80]!r}")
            continue
        records.append(record)
    return records


@dataclass
class ReplayResult:
    """What :func:`replay` re-issued; the invocations wait, held, for ``system.step()``."""

    invocations: list[int] = field(default_factory=list)
    spawned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing_payloads: int = 0

    def _repr_html_(self) -> str:
        skipped = "".join(f"<li>{html.escape(s)}</li>" for s in self.skipped[:20])
        return (
            f"<div><b>Replay</b>: {len(self.invocations)} invocations held for stepping, "
            f"{len(self.spawned)} instances spawned, {self.missing_payloads} without a recorded "
            f"payload (sent as Noop), {len(self.skipped)} skipped"
            + (f"<ul>{skipped}</ul>" if skipped else "")
            + "</div>"
        )


def replay(
    system: ActorSystem,
    source: str | os.PathLike[str] | IO[str] | Iterable[dict[str, Any]],
    *,
    pause: bool = True,
) -> ReplayResult:
    """Re-issue a log's external spawns and invocations into ``system``, paused (module docs)."""
    from spawn_lab.core.errors import SpawnLabError

    if isinstance(source, str | os.PathLike) or hasattr(source, "read"):
        records = read_jsonl(cast("str | os.PathLike[str] | IO[str]", source))
    else:
        records = list(source)
    records.sort(key=lambda r: r["seq"])
    scheduled = {r["invocation"]: r for r in records if r["kind"] == EventKind.SCHEDULE.value}
    result = ReplayResult()
    if pause:
        system.pause()
    for r in records:
        kind, detail = r["kind"], r.get("detail") or {}
        try:
            if kind == EventKind.SPAWN.value and detail.get("parent"):
                system.spawn(r["actor"], detail["parent"])
                result.spawned.append(r["actor"])
            elif kind == EventKind.INVOKE.value and not detail.get("caller"):
                via = detail.get("via")
                if via not in (Via.EXTERNAL.value, Via.SCHEDULED.value):
                    continue
                delay = 0.0
                if via == Via.SCHEDULED.value and r["invocation"] in scheduled:
                    delay = max(float(scheduled[r["invocation"]]["detail"]["at"]) - r["time"], 0.0)
                if "payload" in detail:
                    payload = NOOP if detail.get("noop") else detail["payload"]
                else:
                    payload = NOOP
                    result.missing_payloads += 1
                inv = system.tell(
                    r["actor"],
                    r["action"],
                    payload,
                    metadata=detail.get("metadata") or None,
                    delay=delay,
                )
                result.invocations.append(inv)
        except SpawnLabError as exc:
            result.skipped.append(f"seq {r['seq']} {kind} {r['actor']}.{r['action']}: {exc}")
    return result
