"""Runtime features the lab uses when the runtime offers them: detected, never imitated.

The lab shows a control only if the :class:`ActorSystem` has the call behind it; otherwise
the control is disabled with a tooltip naming the missing call. The shapes it relies on:

- ``system.revisions(name)``: a sequence of stored revisions, oldest first, each with
  ``revision``, ``status`` and ``timestamp`` (``spawn_lab.runtime.revisions.RevisionHistory``).
- ``system.state_at(name, revision=n)``: the decoded state stored as revision ``n``.
- ``system.restore(name, revision)``: make that revision current again (saved as a new
  revision; history is never rewritten); it queues behind the actor's running message, so the
  lab calls it off the kernel thread.
- ``system.crash(name)``: drop the activation without saving, as if its process died, so the
  next message reactivates it from its last stored snapshot. Not offered by the runtime yet.
"""

from __future__ import annotations

from typing import Any

__all__ = ("HOOKS", "has", "missing_hint")

#: Hook name -> what it is for (shown when it is missing).
HOOKS = {
    "revisions": "revision history",
    "state_at": "viewing an old revision",
    "restore": "restoring a revision",
    "crash": "crash injection",
}


def has(system: Any, hook: str) -> bool:
    """True if the runtime offers ``hook`` (one of :data:`HOOKS`)."""
    return callable(getattr(system, hook, None))


def missing_hint(hook: str) -> str:
    return f"{HOOKS[hook]} needs ActorSystem.{hook}(), which this runtime does not offer yet"
