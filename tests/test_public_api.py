"""The public API stays small and importing it stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import spawn_lab


def test_public_api_exports_exactly_what_it_lists() -> None:
    assert isinstance(spawn_lab.__all__, tuple)
    for name in spawn_lab.__all__:
        assert hasattr(spawn_lab, name), name
    public = {
        name
        for name, value in vars(spawn_lab).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - set(spawn_lab.__all__) == set()


def test_public_api_import_loads_no_ui_grpc_or_plotting() -> None:
    code = (
        "import sys, spawn_lab; "
        "heavy = ('ipywidgets', 'grpc', 'matplotlib', 'networkx', 'aiohttp', 'psycopg'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
