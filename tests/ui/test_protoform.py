"""The composer's form generated from a protobuf request type (issue 6, message composer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import spawn_lab as sl
from spawn_lab.protobuf import compile_proto
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui.lab import Lab

SHOP = """
syntax = "proto3";
package lab.uiform;
import "spawn/actors/extensions.proto";

message Order {
  string item = 1;
  int32 qty = 2;
  bool gift = 3;
  Size size = 4;
  repeated string notes = 5;
}
enum Size { SMALL = 0; LARGE = 1; }
message Receipt { string text = 1; }

service Shop {
  option (spawn.actors.actor) = { kind: NAMED stateful: false };
  rpc Buy(Order) returns (Receipt);
}
"""


@pytest.fixture
def shop_lab() -> Iterator[tuple[ActorSystem, Lab, object]]:
    proto = compile_proto(SHOP, "ui_form_shop.proto")

    def buy(ctx: sl.Context, order: object) -> object:
        text = f"{order.qty} x {order.item} {proto.Size.Name(order.size)} gift={order.gift}"  # type: ignore[attr-defined]
        return proto.Receipt(text=f"{text} notes={list(order.notes)}")  # type: ignore[attr-defined]

    with ActorSystem("ui-form", store="memory://") as system:
        system.register(proto.actor("Shop", handlers={"Buy": buy}))
        lab = Lab(system)
        try:
            yield system, lab, proto
        finally:
            lab.close()
            lab.asks.shutdown()
            lab.control.shutdown()


def test_composer_shows_a_form_for_a_protobuf_request_and_sends_it(
    shop_lab: tuple[ActorSystem, Lab, object],
) -> None:
    _, lab, _ = shop_lab
    composer = lab.composer
    composer.refresh()
    composer.actor.value = "Shop"
    composer.action.value = "Buy"
    assert composer.form is not None
    fields = composer.form.fields
    assert list(fields) == ["item", "qty", "gift", "size", "notes"]
    assert fields["size"].options == ("SMALL", "LARGE")
    fields["item"].value = "tea"
    fields["qty"].value = 3
    fields["gift"].value = True
    fields["size"].value = "LARGE"
    fields["notes"].value = '["green", "loose"]'
    composer.button.click()
    lab.asks.wait()
    reply = composer.result.value
    assert "3 x tea LARGE gift=True" in reply and "green" in reply and "loose" in reply
    assert lab.errors.errors == []


def test_composer_form_refuses_a_bad_field_naming_it(
    shop_lab: tuple[ActorSystem, Lab, object],
) -> None:
    _, lab, _ = shop_lab
    composer = lab.composer
    composer.refresh()
    composer.actor.value = "Shop"
    composer.action.value = "Buy"
    assert composer.form is not None
    composer.form.fields["notes"].value = "[not json"
    composer.button.click()
    lab.asks.wait()
    assert lab.errors.errors, "the bad field was not reported"
    assert "'notes' is not valid JSON" in lab.errors.errors[-1][1]


def test_composer_keeps_the_json_editor_for_plain_actors(
    shop_lab: tuple[ActorSystem, Lab, object],
) -> None:
    system, lab, _ = shop_lab
    plain = sl.Actor("plain", stateful=False)
    plain.action(lambda ctx, p: p, name="echo")
    system.register(plain)
    lab.composer.refresh()
    lab.composer.actor.value = "plain"
    assert lab.composer.form is None
    assert lab.composer.payload_box.children == (lab.composer.payload,)
