"""``compile_proto``: compile proto text with grpcio-tools inside the running process.

Why not ``python -m grpc_tools.protoc``: its errors go to the process's stderr, not to the
caller. ``grpc_tools._protoc_compiler.get_protos`` (what grpc_tools' own import hook uses)
raises them as values with file, line and column, and returns the generated code of the file
and of every file it imports, in dependency order. Each generated file carries its serialized
``FileDescriptorProto``; we add those to a fresh descriptor pool rather than executing the code,
which would write into the default pool (where a changed file of the same name is refused).
"""

from __future__ import annotations

import ast
import tempfile
import warnings
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pool

from spawn_lab.core.errors import RegistrationError
from spawn_lab.protobuf.compiled import CompiledProto
from spawn_lab.protobuf.errors import ProtoCompileError, ProtoIssue
from spawn_lab.protobuf.registry import ProtoRegistry, default_registry

__all__ = ("compile_proto", "include_paths")

_RESERVED = ("google/", "spawn/")


def include_paths() -> list[Path]:
    """Where imports are found: the Spawn protos, protobuf's well-known types, google/api."""
    import google.api.annotations_pb2 as annotations
    import grpc_tools

    import spawn_lab

    package = Path(spawn_lab.__file__).resolve().parent
    spawn_roots = [package / "protocol", package.parent / "protos"]
    spawn_root = next(
        (root for root in spawn_roots if (root / "spawn/actors/extensions.proto").is_file()), None
    )
    if spawn_root is None:
        raise RegistrationError(
            f"the Spawn .proto files are missing (looked in {', '.join(map(str, spawn_roots))})"
        )
    return [
        spawn_root,
        Path(grpc_tools.__file__).resolve().parent / "_proto",
        Path(annotations.__file__).resolve().parents[2],
    ]


def compile_proto(
    text: str, name: str = "cell.proto", *, registry: ProtoRegistry | None = None
) -> CompiledProto:
    """Compile ``text`` as the file ``name`` and register its types (replacing an older ``name``).

    The file may import the Spawn protos (``spawn/actors/extensions.proto``),
    ``google/api/annotations.proto``, the well-known types and files compiled earlier into the
    same registry. Raises :class:`ProtoCompileError` (line and column of each problem).
    """
    registry = default_registry() if registry is None else registry
    _check_name(name)
    sources = registry.sources()
    sources[name] = text
    compiled = _compile(name, sources)
    registry.add(compiled)
    return compiled


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.endswith(".proto"):
        raise RegistrationError(f"proto file name {name!r} must end with '.proto'")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise RegistrationError(f"proto file name {name!r} must be a relative path without '..'")
    if name.startswith(_RESERVED):
        raise RegistrationError(
            f"proto file name {name!r} would shadow the bundled google/ or spawn/ protos"
        )


def _compile(name: str, sources: dict[str, str]) -> CompiledProto:
    from grpc_tools import _protoc_compiler

    with tempfile.TemporaryDirectory(prefix="spawn-lab-proto.") as tmp:
        root = Path(tmp)
        for file, source in sources.items():
            target = root / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
        includes = [str(p).encode() for p in (root, *include_paths())]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                generated = _protoc_compiler.get_protos(name.encode(), includes)
            except _protoc_compiler.ProtocErrors as exc:
                raise ProtoCompileError(_issues(exc), sources) from None
    pool = descriptor_pool.DescriptorPool()
    for module_path, code in generated:
        pool.AddSerializedFile(_serialized_file(module_path.decode(), code.decode()))
    return CompiledProto(
        name, sources[name], pool.FindFileByName(name), tuple(str(w.message) for w in caught)
    )


def _issues(exc: Exception) -> tuple[ProtoIssue, ...]:
    """protoc's errors with 1-based lines and columns (it reports them 0-based)."""
    issues = []
    for error in exc.errors():  # type: ignore[attr-defined]
        file = _text(error.filename)
        line = error.line + 1 if error.line >= 0 else None
        column = error.column + 1 if line is not None else None
        issues.append(ProtoIssue(file, line, column, _text(error.message)))
    # Located problems first: "Import x was not found" beats "x: File not found" as a headline.
    issues.sort(key=lambda issue: issue.line is None)
    return tuple(issues) or (ProtoIssue("?", None, None, str(exc)),)


def _text(value: object) -> str:
    """ProtocError fields are bytes, or the str() of bytes (``"b'x.proto'"``) in some versions."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    text = str(value)
    if text.startswith(("b'", 'b"')):
        try:
            literal = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(literal, bytes):
            return literal.decode(errors="replace")
    return text


def _serialized_file(module_path: str, code: str) -> bytes:
    """The ``FileDescriptorProto`` bytes of one generated module.

    Files the default pool already holds (the well-known types, google/api, Spawn's) are taken
    from it: parsing 360 kB of generated descriptor.proto code on every compile would be waste.
    """
    guess = module_path.removesuffix("_pb2.py") + ".proto"
    try:
        return descriptor_pool.Default().FindFileByName(guess).serialized_pb
    except KeyError:
        pass
    for node in ast.walk(ast.parse(code)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            return node.args[0].value
    raise RegistrationError(
        f"protoc's output for {module_path!r} holds no serialized descriptor; "
        "the grpcio-tools code generator changed shape"
    )
