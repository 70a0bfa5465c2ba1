"""Our protos/ must be wire-identical to Spawn's: every field, enum value, rpc, extension, import
and file option, as listed in tests/data/spawn-wire-facts.tsv (taken from eigr/spawn dcbaec4f)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "protos"
FACTS = REPO / "tests" / "data" / "spawn-wire-facts.tsv"
SPAWN_PROTOS = (
    "spawn/actors/actor.proto",
    "spawn/actors/protocol.proto",
    "spawn/actors/state.proto",
    "spawn/actors/extensions.proto",
    "spawn/actors/healthcheck.proto",
)

Row = tuple[str, ...]  # file, package, kind, scope, name, number, label, type, oneof

_F = descriptor_pb2.FieldDescriptorProto
_TYPE_NAMES = {number: name.removeprefix("TYPE_").lower() for name, number in _F.Type.items()}
_LABEL_NAMES = {_F.LABEL_OPTIONAL: "optional", _F.LABEL_REQUIRED: "required"}
_LABEL_NAMES[_F.LABEL_REPEATED] = "repeated"


def include_paths() -> list[Path]:
    """protos/, protobuf's well-known types (grpcio-tools) and googleapis' google/api protos."""
    import google.api.annotations_pb2 as annotations
    import grpc_tools

    return [
        PROTO_ROOT,
        Path(grpc_tools.__file__).parent / "_proto",
        Path(annotations.__file__).parents[2],
    ]


def compile_descriptor_set(
    files: tuple[str, ...] = SPAWN_PROTOS,
) -> descriptor_pb2.FileDescriptorSet:
    """Compile ``files`` with grpc_tools.protoc (in a subprocess) into a FileDescriptorSet."""
    with tempfile.TemporaryDirectory(prefix="wire-facts.") as tmp:
        out = Path(tmp) / "set.pb"
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{path}" for path in include_paths()),
            "--include_imports",
            f"--descriptor_set_out={out}",
            *files,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            pytest.fail(f"protoc failed ({done.returncode}):\n{done.stderr}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _field_type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    return field.type_name.lstrip(".") if field.type_name else _TYPE_NAMES[field.type]


def _message_rows(
    file: descriptor_pb2.FileDescriptorProto, scope: str, message: descriptor_pb2.DescriptorProto
) -> Iterator[Row]:
    name, package = file.name, file.package
    for field in message.field:
        oneof = message.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else ""
        yield (
            name,
            package,
            "field",
            scope,
            field.name,
            str(field.number),
            _LABEL_NAMES[field.label],
            _field_type(field),
            oneof,
        )
    for enum in message.enum_type:
        for value in enum.value:
            yield (
                name,
                package,
                "enum",
                f"{scope}.{enum.name}",
                value.name,
                str(value.number),
                "",
                "",
                "",
            )
    for nested in message.nested_type:
        yield from _message_rows(file, f"{scope}.{nested.name}", nested)


def wire_facts(descriptor_set: descriptor_pb2.FileDescriptorSet) -> set[Row]:
    """The rows of the facts table that the ``spawn/`` files of ``descriptor_set`` produce."""
    rows: set[Row] = set()
    for file in descriptor_set.file:
        if not file.name.startswith("spawn/"):
            continue
        name, package = file.name, file.package
        rows.add((name, package, "file", "", "imports", "", "", ",".join(file.dependency), ""))
        for message in file.message_type:
            rows.update(_message_rows(file, message.name, message))
        for enum in file.enum_type:
            for value in enum.value:
                rows.add(
                    (name, package, "enum", enum.name, value.name, str(value.number), "", "", "")
                )
        for service in file.service:
            for method in service.method:
                signature = f"{method.input_type.lstrip('.')} -> {method.output_type.lstrip('.')}"
                rows.add((name, package, "rpc", service.name, method.name, "", "", signature, ""))
        for ext in file.extension:
            rows.add(
                (
                    name,
                    package,
                    "extension",
                    ext.extendee.lstrip("."),
                    ext.name,
                    str(ext.number),
                    _LABEL_NAMES[ext.label],
                    _field_type(ext),
                    "",
                )
            )
        options = file.options
        if options.java_package or options.go_package:
            rows.add(
                (
                    name,
                    package,
                    "option",
                    "",
                    f"java_package={options.java_package}",
                    "",
                    "",
                    f"go_package={options.go_package}",
                    "",
                )
            )
    return rows


def expected_facts(path: Path = FACTS) -> set[Row]:
    """The non-comment rows of the TSV (trailing empty columns kept, as written)."""
    rows: set[Row] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            rows.add(tuple(line.split("\t")))
    return rows


def _diff(expected: set[Row], actual: set[Row]) -> str:
    lines = [f"- {' | '.join(row)}" for row in sorted(expected - actual)]
    lines += [f"+ {' | '.join(row)}" for row in sorted(actual - expected)]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def actual_facts() -> set[Row]:
    return wire_facts(compile_descriptor_set())


def test_wire_facts_table_is_complete() -> None:
    rows = expected_facts()
    assert len(rows) == 172
    assert all(len(row) == 9 for row in rows)


def test_wire_facts_match_spawn(actual_facts: set[Row]) -> None:
    expected = expected_facts()
    assert actual_facts == expected, (
        "protos/ differ from Spawn's wire facts (- expected only, + ours only):\n"
        + _diff(expected, actual_facts)
    )


def test_wire_facts_cover_every_spawn_file(actual_facts: set[Row]) -> None:
    assert {row[0] for row in actual_facts} == set(SPAWN_PROTOS)


def test_healthcheck_options_match_spawn() -> None:
    """Options are not in the table: check the actor option and the HTTP rules directly."""
    from google.api import annotations_pb2

    from spawn_lab.protocol.spawn.actors import actor_pb2, extensions_pb2, healthcheck_pb2

    service = healthcheck_pb2.DESCRIPTOR.services_by_name["HealthCheckActor"]
    assert service.full_name == "spawn.actors.healthcheck.HealthCheckActor"
    actor_option: Any = extensions_pb2.actor  # generated stubs type it as a plain FieldDescriptor
    opts: extensions_pb2.ActorOpts = service.GetOptions().Extensions[actor_option]
    assert opts.kind == actor_pb2.NAMED
    assert not opts.stateful
    assert opts.state_type == ".google.protobuf.Empty"
    assert opts.snapshot_interval == 120_000
    assert opts.deactivate_timeout == 12_000
    routes = {
        name: method.GetOptions().Extensions[annotations_pb2.http].get
        for name, method in service.methods_by_name.items()
    }
    assert routes == {"Liveness": "/health/liveness", "Readiness": "/health/readiness"}
