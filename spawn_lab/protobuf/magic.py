"""The ``%%proto`` cell magic: ``%load_ext spawn_lab.protobuf``, then a cell of proto text.

``%%proto counter.proto`` compiles the cell as ``counter.proto`` and binds the result to
``counter_pb2`` in the notebook, the name ``import counter_pb2`` would give (``--as NAME``
picks another). Re-running the cell replaces the file's types; actors built from the old
result keep working until their cell is run again. Error lines count the ``%%proto`` line, as
the notebook numbers the cell.
"""

from __future__ import annotations

import argparse
import keyword
import re
import shlex
from typing import Any

from spawn_lab.core.errors import RegistrationError
from spawn_lab.protobuf.compiled import CompiledProto
from spawn_lab.protobuf.compiler import compile_proto

__all__ = ("load_ipython_extension", "proto_magic", "variable_name")

_USAGE = "%%proto [FILE.proto] [--as NAME]"


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%proto`` on ``ipython`` (what ``%load_ext spawn_lab.protobuf`` calls)."""

    def proto(line: str, cell: str) -> CompiledProto:
        return proto_magic(line, cell, ipython.user_ns)

    proto.__doc__ = __doc__
    ipython.register_magic_function(proto, magic_kind="cell", magic_name="proto")


def proto_magic(line: str, cell: str, namespace: dict[str, Any]) -> CompiledProto:
    """Compile ``cell`` as the file named on ``line``; bind the result in ``namespace``."""
    parser = argparse.ArgumentParser(prog="%%proto", usage=_USAGE, add_help=False)
    parser.add_argument("file", nargs="?", default="cell.proto")
    parser.add_argument("--as", dest="var", default=None)
    try:
        args = parser.parse_args(shlex.split(line))
    except (SystemExit, ValueError):
        raise RegistrationError(
            f"cannot read %%proto arguments {line!r}; usage: {_USAGE}"
        ) from None
    file = args.file if args.file.endswith(".proto") else f"{args.file}.proto"
    var = args.var or variable_name(file)
    if not var.isidentifier() or keyword.iskeyword(var):
        raise RegistrationError(f"--as {var!r} is not a Python identifier")
    compiled = compile_proto("\n" + cell, file)  # the blank first line stands for %%proto
    namespace[var] = compiled
    return compiled


def variable_name(file: str) -> str:
    """``shop/order-v1.proto`` -> ``order_v1_pb2``, as protoc names the generated module."""
    stem = file.rsplit("/", 1)[-1].removesuffix(".proto")
    name = re.sub(r"\W", "_", stem)
    return f"_{name}_pb2" if name[:1].isdigit() else f"{name}_pb2"
