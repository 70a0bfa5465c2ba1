"""Access-control policies (spec §10.1, checklist §11 I60-I61)."""

from __future__ import annotations

import pytest

from spawn_lab.core.acl import Policy, authorized, load_policies, parse_policy
from spawn_lab.core.errors import AccessDeniedError, RegistrationError
from spawn_lab.core.model import ActorId
from spawn_lab.runtime.actors import Actor
from spawn_lab.testing import EngineHarness

ROBERT = ActorId("robert", "sys")
MIKE = ActorId("mike", "sys")


def test_acl_default_allows_everything() -> None:
    """§11 I60: no policies, or a bare allow policy, allow everything."""
    assert authorized([], None, "sum")
    assert authorized([parse_policy("default", 'type: "allow"')], None, "sum")


def test_acl_policy_cases() -> None:
    """§11 I61: deny-all, actor allow/deny and action allow, as upstream's evaluator tests."""
    deny_all = Policy("deny", allow=False)
    assert not authorized([deny_all], ROBERT, "get")
    allow_robert = Policy("r", actors=("robert",))
    assert authorized([allow_robert], ROBERT, "get")
    assert not authorized([allow_robert], MIKE, "get")
    deny_robert = Policy("dr", allow=False, actors=("robert",))
    assert not authorized([deny_robert], ROBERT, "get")
    allow_get = Policy("g", actions=("get",))
    assert authorized([allow_get], ROBERT, "get")
    assert not authorized([allow_get], ROBERT, "sum")


def test_acl_policy_files_load_and_refuse_bad_lines(tmp_path) -> None:
    (tmp_path / "only_robert.policy").write_text(
        'type: "allow"\nactors: robert\nactions: get:sum\n'
    )
    [policy] = load_policies(tmp_path)
    assert policy.name == "only_robert" and policy.actions == ("get", "sum")
    with pytest.raises(RegistrationError, match="line 1"):
        parse_policy("bad", "nonsense")


def test_acl_denied_invocation_fails_with_clear_error() -> None:
    h = EngineHarness()
    h.engine.policies = [Policy("r", actors=("front",))]
    back = Actor("back", stateful=False)
    back.action(lambda ctx, p: "ok", name="work")
    h.register(back)
    inv = h.ask("back", "work")
    h.run_until_idle()
    error = h.reply(inv).error
    assert isinstance(error, AccessDeniedError)
    assert "external caller may not invoke back.work" in str(error)
