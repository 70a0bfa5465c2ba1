"""The transport and protocol modules export exactly what their tuple ``__all__`` lists."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "spawn_lab.protocol.codec",
    "spawn_lab.protocol.status",
    "spawn_lab.protocol.legacy",
    "spawn_lab.transports.wire",
    "spawn_lab.transports.userfn",
    "spawn_lab.transports.http",
    "spawn_lab.transports.http.client",
    "spawn_lab.transports.http.proxy",
    "spawn_lab.transports.http.runner",
    "spawn_lab.transports.http.userfn",
    "spawn_lab.transports.http.metrics",
    "spawn_lab.transports.loop",
    "spawn_lab.cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_exports_are_a_tuple_of_defined_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, tuple)
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.{symbol}"
    assert inspect.getdoc(module), f"{name} has no module docstring"


def test_wire_imports_no_http_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, spawn_lab.transports.wire, spawn_lab.transports.userfn; "
        "print([m for m in ('aiohttp', 'grpc') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_cli_help_names_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    from spawn_lab.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("--user-function", "USER_FUNCTION_HOST", "SPAWN_LAB_TOKEN", "127.0.0.1", "9001"):
        assert word in text
