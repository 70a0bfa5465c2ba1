"""Panels driven through their widget objects: fields filled, buttons pressed, runtime checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.lab import Lab

from .conftest import build_mesh


@pytest.fixture
def lab(system: ActorSystem) -> Iterator[Lab]:
    built = Lab(system)
    yield built
    built.asks.wait()
    built.control.wait()
    built.close()
    built.asks.shutdown()
    built.control.shutdown()


def send(lab: Lab, actor: str, action: str, payload: str = "", mode: str = "ask") -> None:
    composer = lab.composer
    composer.actor.value = actor
    composer.action.value = action
    composer.payload.value = payload
    composer.mode.value = mode
    composer.button.click()
    lab.asks.wait()


def test_spawn_form_spawns_an_instance_and_selects_it(lab: Lab, system: ActorSystem) -> None:
    assert lab.spawner.template.options == ("worker",)
    lab.spawner.name.value = "w7"
    lab.spawner.button.click()
    assert "spawned w7 from worker" in lab.spawner.result.value
    assert lab.spawner.name.value == ""
    assert "w7" in [i.actor_id.name for i in system.actors()]
    assert lab.actors.select.value == "w7"
    assert "w7" in lab.inspector.header.value
    assert lab.errors.errors == []


def test_spawn_form_without_name_reports_in_the_error_pane(lab: Lab, system: ActorSystem) -> None:
    lab.spawner.button.click()
    assert len(lab.errors.errors) == 1
    assert "give the new instance a name" in lab.errors.errors[0][1]
    assert "1 error" in lab.errors.title.value


def test_composer_lists_registered_actions_of_the_chosen_actor(lab: Lab) -> None:
    lab.composer.actor.value = "counter"
    assert set(lab.composer.action.options) == {"add", "boom", "receive", "relay", "get"}
    lab.composer.actor.value = "logger"
    assert lab.composer.action.options == ("log", "get")


def test_composer_ask_shows_the_reply_and_changes_state(lab: Lab, system: ActorSystem) -> None:
    send(lab, "counter", "add", "5")
    assert "reply:" in lab.composer.result.value and ">5</pre>" in lab.composer.result.value
    assert system.state("counter") == {"value": 5}
    lab.select("counter")
    assert "&quot;value&quot;: 5" in lab.inspector.state.value
    assert any(p == (5, {}) for p in lab.composer.payloads.values())


def test_composer_tell_with_metadata_returns_at_once(lab: Lab, system: ActorSystem) -> None:
    lab.composer.metadata.value = '{"trace": "t-1"}'
    send(lab, "counter", "add", "2", mode="tell")
    system.run_until_idle()
    assert "told counter.add" in lab.composer.result.value
    assert system.state("counter") == {"value": 2}
    ((_, (payload, metadata)),) = lab.composer.payloads.items()
    assert (payload, metadata) == (2, {"trace": "t-1"})


def test_composer_handler_error_shows_in_result_and_error_pane(lab: Lab) -> None:
    send(lab, "counter", "boom")
    assert "InvocationError" in lab.composer.result.value
    assert len(lab.errors.errors) == 1 and "boom on purpose" in lab.errors.errors[0][1]


def test_composer_invalid_json_goes_to_the_error_pane(lab: Lab, system: ActorSystem) -> None:
    before = system.trace_seq()
    send(lab, "counter", "add", "{not json")
    assert "payload is not valid JSON" in lab.errors.errors[0][1]
    assert system.trace_seq() == before  # nothing was sent


def test_actor_list_filters_and_counts(lab: Lab, system: ActorSystem) -> None:
    system.spawn("w1", "worker")
    lab.actors.refresh()
    names = [value for _, value in lab.actors.select.options]
    assert names == ["counter", "logger", "w1", "worker"]
    lab.actors.kind.value = "UNNAMED"
    assert [v for _, v in lab.actors.select.options] == ["w1", "worker"]
    lab.actors.status.value = "templates"
    assert [v for _, v in lab.actors.select.options] == ["worker"]
    lab.actors.kind.value = "all kinds"
    lab.actors.status.value = "all"
    lab.actors.filter.value = "log"
    assert [v for _, v in lab.actors.select.options] == ["logger"]
    assert "UNNAMED 2" in lab.actors.counts.value and "1 templates" in lab.actors.counts.value


def test_actor_list_shows_passivated_actors(lab: Lab, system: ActorSystem) -> None:
    system.ask("counter", "add", 1)
    system.run_until_idle()
    system.deactivate("counter")
    lab.actors.status.value = "passivated"
    assert "counter" in [v for _, v in lab.actors.select.options]


def test_inspector_deactivate_button_passivates_the_actor(lab: Lab, system: ActorSystem) -> None:
    send(lab, "counter", "add", "3")
    system.run_until_idle()
    lab.actors.select.value = "counter"
    assert "active" in lab.inspector.header.value
    lab.inspector.deactivate_button.click()
    assert not next(i for i in system.actors() if i.actor_id.name == "counter").active
    assert "passivated" in lab.inspector.header.value
    assert lab.inspector.deactivate_button.disabled
    assert system.state("counter") == {"value": 3}  # state survived, from the store


def test_inspector_crash_button_drops_unsaved_state(lab: Lab, system: ActorSystem) -> None:
    system.ask("counter", "add", 3)
    system.run_until_idle()  # the broadcast it made comes back to counter; crash between messages
    lab.actors.select.value = "counter"
    assert not lab.inspector.crash_button.disabled
    lab.inspector.crash_button.click()
    lab.control.wait()
    assert system.state("counter") == {"value": 0}  # nothing was stored before the crash
    assert any(e.error == "crash injected" for e in system.events())
    assert lab.errors.errors == []


def test_inspector_lists_mailbox_and_recent_messages(lab: Lab, system: ActorSystem) -> None:
    lab.open()
    try:
        lab.select("counter")
        lab.controls.pause.value = True
        send(lab, "counter", "add", "1", mode="tell")
        lab.refresh()
        assert "1 held" in lab.controls.held.value
        lab.controls.step_button.click()
        lab.control.wait()
        lab.refresh()
        assert "add" in lab.inspector.messages.value
        assert "mailbox: 0" in lab.inspector.mailbox.value
    finally:
        lab.controls.pause.value = False


def test_step_controls_pause_step_and_resume(lab: Lab, system: ActorSystem) -> None:
    lab.controls.pause.value = True
    assert system.paused
    send(lab, "counter", "add", "4", mode="tell")
    send(lab, "counter", "add", "6", mode="tell")
    lab.controls.refresh()
    assert "2 held" in lab.controls.held.value and not lab.controls.step_button.disabled
    lab.controls.step_button.click()
    lab.control.wait()
    assert "stepped" in lab.controls.result.value
    assert system.state("counter") == {"value": 4}
    lab.controls.run_button.click()
    lab.control.wait()
    assert system.state("counter") == {"value": 10}
    lab.controls.pause.value = False
    assert not system.paused


def test_step_controls_breakpoint_pauses_on_matching_message(lab: Lab, system: ActorSystem) -> None:
    lab.controls.bp_actor.value = "logger"
    lab.controls.bp_add.click()
    assert system.breakpoints == {("logger", "*")}
    assert "logger.*" in lab.controls.breakpoints.value
    system.tell("counter", "add", 1)  # its side effect to logger hits the breakpoint
    system.run_until_idle()
    lab.controls.refresh()
    assert system.paused and lab.controls.pause.value
    lab.controls.bp_clear.click()
    assert system.breakpoints == set()
    lab.controls.pause.value = False
    system.run_until_idle()


def test_step_controls_refuse_a_breakpoint_on_everything(lab: Lab) -> None:
    lab.controls.bp_add.click()
    assert "name an actor or an action" in lab.errors.errors[0][1]


def test_event_log_filters_by_kind_and_text(lab: Lab, system: ActorSystem) -> None:
    system.ask("logger", "log", 1)
    system.ask("counter", "add", 1)
    lab.refresh()
    assert "counter" in lab.log.table.value
    lab.log.kind.value = "invoke"
    assert all(e[2].value == "invoke" for e in lab.log.matching())
    lab.log.filter.value = "logger"
    rows = lab.log.matching()
    assert rows and all("logger" in f"{e[5]} {e[6]} {e[7]}" for e in rows)


def test_error_pane_clear_button(lab: Lab) -> None:
    lab.spawner.button.click()
    assert lab.errors.errors
    lab.errors.widget.children[0].children[1].click()
    assert lab.errors.errors == [] and "no errors" in lab.errors.title.value


def test_inspector_scrubs_revision_history_and_restores(tmp_path: object) -> None:
    with ActorSystem("time-travel", store="memory://", durable=True) as system:
        build_mesh(system)
        system.ask("counter", "add", 1)
        system.ask("counter", "add", 2)
        system.run_until_idle()
        lab = Lab(system)
        try:
            lab.select("counter")
            inspector = lab.inspector
            assert len(inspector.revisions) >= 2 and not inspector.restore_button.disabled
            first = next(i for i, r in enumerate(inspector.revisions) if r.revision == 1)
            inspector.slider.value = first
            assert "revision 1 of" in inspector.past.value
            assert "&quot;value&quot;: 1" in inspector.past.value
            inspector.restore_button.click()
            lab.control.wait()
            assert system.state("counter") == {"value": 1}
            assert "restored revision 1" in inspector.past.value
            assert lab.errors.errors == []
        finally:
            lab.close()
