"""Access control (spec §10.1): policies that allow or deny an invocation by its caller.

A policy matches when the caller's system, the caller's name and the action all match its lists
(``*`` matches anything). The invocation is authorised if *any* policy evaluates true: an allow
policy is true when it matches; a deny policy is true when it does *not* match. With no policies
everything is allowed, like upstream's default ``type: "allow"`` policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spawn_lab.core.errors import RegistrationError
from spawn_lab.core.model import ActorId

__all__ = ("Policy", "authorized", "load_policies", "parse_policy")


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy file: ``type`` allow or deny, and the caller systems, actors and actions."""

    name: str = "default"
    allow: bool = True
    actors: tuple[str, ...] = ("*",)
    actions: tuple[str, ...] = ("*",)
    actor_systems: tuple[str, ...] = ("*",)

    def matches(self, caller: ActorId | None, action: str) -> bool:
        system = caller.system if caller else ""
        name = caller.name if caller else ""
        return (
            _match(self.actor_systems, system)
            and _match(self.actors, name)
            and _match(self.actions, action)
        )

    def evaluate(self, caller: ActorId | None, action: str) -> bool:
        matched = self.matches(caller, action)
        return matched if self.allow else not matched


def _match(patterns: tuple[str, ...], value: str) -> bool:
    return "*" in patterns or value in patterns


def authorized(policies: Iterable[Policy], caller: ActorId | None, action: str) -> bool:
    """True if any policy authorises ``caller`` to run ``action`` (true with no policies)."""
    policies = list(policies)
    return not policies or any(p.evaluate(caller, action) for p in policies)


def parse_policy(name: str, text: str) -> Policy:
    """Parse upstream's ``key: value[:value...]`` policy format."""
    fields: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise RegistrationError(
                f"policy {name!r} line {number}: expected 'key: value', got {line!r}"
            )
        values = tuple(v.strip().strip('"').strip("'") for v in rest.split(":") if v.strip())
        fields[key.strip()] = values or ("*",)
    kind = fields.pop("type", ("allow",))[0].lower()
    if kind not in ("allow", "deny"):
        raise RegistrationError(f"policy {name!r}: type must be allow or deny, got {kind!r}")
    unknown = set(fields) - {"actors", "actions", "actor_systems"}
    if unknown:
        raise RegistrationError(f"policy {name!r}: unknown keys {sorted(unknown)!r}")
    return Policy(
        name,
        allow=kind == "allow",
        actors=fields.get("actors", ("*",)),
        actions=fields.get("actions", ("*",)),
        actor_systems=fields.get("actor_systems", ("*",)),
    )


def load_policies(folder: str | Path) -> list[Policy]:
    """Every ``*.policy`` file of ``folder``, each named after its file."""
    return [parse_policy(p.stem, p.read_text()) for p in sorted(Path(folder).glob("*.policy"))]
