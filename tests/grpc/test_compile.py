"""Part 1: proto text compiled in the kernel, its types usable as payloads and state at once."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest
from google.protobuf import any_pb2, empty_pb2

import spawn_lab as sl
import spawn_lab.protobuf
import spawn_lab.transports.grpc
from spawn_lab.protobuf import (
    CompiledProto,
    ProtoCompileError,
    ProtoRegistry,
    compile_proto,
    default_registry,
)
from spawn_lab.protocol import payloads

from .conftest import PACKAGE

SHAPES_V1 = """
syntax = "proto3";
package lab.shapes;
message Point { int32 x = 1; int32 y = 2; }
message Old { string gone = 1; }
"""

SHAPES_V2 = """
syntax = "proto3";
package lab.shapes;
message Point { int32 x = 1; int32 y = 2; string label = 3; }
"""


def test_compile_proto_messages_work_as_payloads(proto: CompiledProto) -> None:
    total = proto.Total(value=7)
    packed = payloads.pack(total)
    assert packed.type_url == f"type.googleapis.com/{PACKAGE}.Total"
    back = payloads.unpack(packed)
    assert type(back) is proto.Total and back == total
    assert payloads.decode(*payloads.encode(total)) == total


def test_compile_proto_messages_work_as_state_through_the_store(proto: CompiledProto) -> None:
    # SQLite (in the test's own folder): the state is stored as bytes and decoded on reload
    with sl.ActorSystem("state-test", store="sqlite:///state.db", timeout=10) as system:
        keeper = sl.Actor("keeper", state=proto.Total(value=1))

        @keeper.action
        def bump(ctx: sl.Context, amount: int) -> sl.Value:
            total = proto.Total(value=ctx.state.value + amount)
            return sl.Value(total, state=total)

        system.register(keeper)
        assert system.ask("keeper", "bump", 2) == proto.Total(value=3)
        system.deactivate("keeper")  # saved as (type URL, bytes); read back through payloads
        system.run_until_idle()
        stored = system.state("keeper")
        assert type(stored) is proto.Total and stored.value == 3


def test_compile_proto_imports_spawn_google_api_and_well_known_types(
    proto: CompiledProto,
) -> None:
    counter = proto.service("Counter")
    assert counter.is_actor and counter.kind is sl.Kind.UNNAMED
    assert [b.template for b in counter.methods["Add"].http] == ["/v1/counters/{id}/add"]
    ping = proto.service("Greeter").methods["Ping"]
    assert ping.input is empty_pb2.Empty  # imported types are the generated classes
    assert proto.file.dependencies[0].name == "google/api/annotations.proto"


def test_compile_proto_recompile_replaces_definitions() -> None:
    v1 = compile_proto(SHAPES_V1, "lab/shapes.proto")
    old_point = payloads.pack(v1.Point(x=1, y=2))
    old = payloads.pack(v1.Old(gone="x"))
    v2 = compile_proto(SHAPES_V2, "lab/shapes.proto")
    assert v2.Point is not v1.Point
    point = payloads.unpack(old_point)
    assert type(point) is v2.Point and (point.x, point.y, point.label) == (1, 2, "")
    assert isinstance(payloads.unpack(old), any_pb2.Any)  # Old is gone: an opaque Any again
    assert default_registry().get("lab/shapes.proto") is v2
    with pytest.raises(AttributeError, match="Old"):
        _ = v2.Old


def test_compile_proto_imports_an_earlier_file() -> None:
    compile_proto(SHAPES_V2, "lab/shapes.proto")
    text = """
    syntax = "proto3";
    package lab.drawing;
    import "lab/shapes.proto";
    message Line { lab.shapes.Point a = 1; lab.shapes.Point b = 2; }
    """
    drawing = compile_proto(textwrap.dedent(text), "lab/drawing.proto")
    line = drawing.Line(a={"x": 1}, b={"y": 2})
    assert payloads.unpack(payloads.pack(line)) == line


def test_compile_proto_syntax_error_points_at_line_and_column() -> None:
    text = 'syntax = "proto3";\npackage bad;\nmessage A {\n  int32 x = 1\n  string y = 2;\n}\n'
    with pytest.raises(ProtoCompileError) as info:
        compile_proto(text, "bad.proto", registry=ProtoRegistry())
    error = info.value
    assert (error.file, error.line, error.column) == ("bad.proto", 5, 3)
    assert 'bad.proto:5:3: Expected ";".' in str(error)
    assert "   5 |   string y = 2;\n" in str(error)
    assert str(error).endswith("\n" + " " * 9 + "^")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # crosses process boundaries


def test_compile_proto_semantic_errors_all_listed() -> None:
    text = 'syntax = "proto3";\npackage bad;\nmessage A {\n  Foo x = 1;\n  int32 y = 1;\n}\n'
    with pytest.raises(ProtoCompileError) as info:
        compile_proto(text, "bad.proto", registry=ProtoRegistry())
    assert [(i.line, i.column) for i in info.value.issues] == [(4, 3), (5, 13)]
    assert '"Foo" is not defined' in str(info.value)
    assert "also: bad.proto:5:13: Field number 1 has already been used" in str(info.value)


def test_compile_proto_missing_import_names_it() -> None:
    text = 'syntax = "proto3";\nimport "nowhere.proto";\n'
    with pytest.raises(ProtoCompileError, match=r'bad.proto:2:1: Import "nowhere.proto" was not'):
        compile_proto(text, "bad.proto", registry=ProtoRegistry())


@pytest.mark.parametrize(
    "name", ["cell.txt", "/abs.proto", "../up.proto", "google/x.proto", "spawn/y.proto"]
)
def test_compile_proto_refuses_bad_file_names(name: str) -> None:
    with pytest.raises(sl.RegistrationError, match=repr(name).replace(".", r"\.")):
        compile_proto('syntax = "proto3";', name, registry=ProtoRegistry())


def test_compile_proto_private_registry_leaves_payloads_alone() -> None:
    registry = ProtoRegistry()
    text = 'syntax = "proto3";\npackage lab.private;\nmessage Secret { int32 n = 1; }\n'
    secret = compile_proto(text, "private.proto", registry=registry)
    assert isinstance(payloads.unpack(payloads.pack(secret.Secret(n=1))), any_pb2.Any)
    assert (
        registry.get("private.proto") is secret and default_registry().get("private.proto") is None
    )


_MAGIC_SCRIPT = r"""
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "spawn_lab.protobuf")
ok = shell.run_cell('%%proto demo.proto\nsyntax = "proto3";\npackage lab.magic;\n'
                    'message P { int32 x = 1; }\n')
assert ok.success, ok.error_in_exec
assert shell.user_ns["demo_pb2"].P(x=4).x == 4
ok = shell.run_cell('%%proto demo.proto --as shapes\nsyntax = "proto3";\npackage lab.magic;\n'
                    'message P { int32 x = 1; int32 y = 2; }\n')
assert ok.success and shell.user_ns["shapes"].P(y=1).y == 1
bad = shell.run_cell('%%proto demo.proto\nsyntax = "proto3";\nmessage P { int32 x = 1 }\n')
assert not bad.success
print("ERROR", bad.error_in_exec.line, bad.error_in_exec.column)
"""


def test_proto_magic_compiles_the_cell_and_binds_a_module_like_name() -> None:
    """%%proto in a real IPython shell (its own process: the shell is a process singleton)."""
    done = subprocess.run(
        [sys.executable, "-c", _MAGIC_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The %%proto line is line 1 of the cell, so the error is on line 3, as the notebook shows.
    assert "ERROR 3 25" in done.stdout
    assert 'demo.proto:3:25: Expected ";"' in done.stdout


def test_import_spawn_lab_loads_no_grpc() -> None:
    code = (
        "import sys, spawn_lab, spawn_lab.protobuf, spawn_lab.transports.grpc.transcode\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'grpc_tools'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", [spawn_lab.protobuf, spawn_lab.transports.grpc])
def test_exports_are_a_tuple_of_real_names(module: object) -> None:
    exported = module.__all__  # type: ignore[attr-defined]
    assert isinstance(exported, tuple)
    for name in exported:
        assert getattr(module, name) is not None
