"""The decoded protocol view: an invocation's Spawn messages rebuilt from the trace."""

from __future__ import annotations

import pytest

from spawn_lab.protocol import payloads
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.lab import Lab
from spawn_lab.ui.protocol import protocol_messages


def test_protocol_view_rebuilds_request_invocation_and_response(system: ActorSystem) -> None:
    system.ask("counter", "add", 5, metadata={"trace": "on"})
    invoke = next(e for e in system.events() if e.kind.value == "invoke" and e.actor == "counter")
    messages = protocol_messages(system, invoke.invocation)
    assert messages.request.action_name == "add"
    assert messages.request.actor.id.name == "counter"
    assert payloads.unpack(messages.request.value) == 5
    assert dict(messages.request.metadata) == {"trace": "on"}
    assert payloads.unpack(messages.actor_invocation.current_context.state) == {"value": 0}
    assert messages.actor_invocation.current_context.self.name == "counter"
    assert messages.response is not None
    assert payloads.unpack(messages.response.updated_context.state) == {"value": 5}
    assert payloads.unpack(messages.response.value) == 5
    text = messages.as_text()
    assert 'action_name: "add"' in text["InvocationRequest"]
    assert "Invocation #" in messages._repr_html_()


def test_protocol_view_of_unknown_invocation_names_it(system: ActorSystem) -> None:
    with pytest.raises(KeyError, match="#9999"):
        protocol_messages(system, 9999)


def test_protocol_tab_decodes_the_chosen_invocation(system: ActorSystem) -> None:
    system.ask("counter", "add", 2)
    lab = Lab(system)
    try:
        invoke = next(e for e in system.events() if e.kind.value == "invoke")
        lab.protocol.number.value = invoke.invocation
        lab.protocol.show_button.click()
        assert "InvocationRequest" in lab.protocol.output.value
        assert lab.errors.errors == []
    finally:
        lab.close()
