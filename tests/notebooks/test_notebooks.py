"""The tutorials: each notebook runs top to bottom in a fresh real kernel, and is committed clean.

Every ``notebooks/*.ipynb`` is executed with nbclient in a new ``python3`` kernel started from this
virtualenv, in a temporary copy of ``notebooks/`` (so a notebook may write files without dirtying
the repository), with ``MPLBACKEND`` removed (an inherited ``Agg`` hides every inline figure). A
cell that raises fails the test with that cell's traceback. Static tests check that notebooks are
committed without outputs and end with a check cell that asserts the outcome.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: The tutorials whose capabilities have landed; the others of issue 7 join as they do.
EXPECTED = {
    "01_first_actor.ipynb",
    "02_spawning.ipynb",
    "03_workflows.ipynb",
    "05_timers_and_stepping.ipynb",
    "09_debugging_a_broken_mesh.ipynb",
}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks

#: Appended to the executed copy only: proves which interpreter and package the kernel used.
_IDENTITY_CELL = """\
import json as _json, os as _os, sys as _sys
import spawn_lab as _spawn_lab
print("SPAWN_LAB_KERNEL " + _json.dumps({
    "prefix": _sys.prefix,
    "executable": _sys.executable,
    "spawn_lab": _spawn_lab.__file__,
    "mplbackend": _os.environ.get("MPLBACKEND"),
    "cwd": _os.getcwd(),
}))
"""


def _params() -> list[object]:
    return [pytest.param(path, id=path.name) for path in NOTEBOOKS]


def _kernel_env() -> dict[str, str]:
    """The test's environment minus MPLBACKEND, with this venv and this checkout first.

    The venv's ``python3`` kernelspec starts ``python -m ipykernel_launcher``; jupyter_client
    swaps a bare ``python`` for its own ``sys.executable`` (this venv's), and PATH covers the rest.
    The identity cell then proves it from inside the kernel.
    """
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # debugpy's frozen-modules notice on stderr
    return env


def _kernel_identity(nb: nbformat.NotebookNode) -> dict[str, object]:
    for output in nb.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith("SPAWN_LAB_KERNEL "):
                return json.loads(line.removeprefix("SPAWN_LAB_KERNEL "))  # type: ignore[no-any-return]
    raise AssertionError("the kernel identity cell printed nothing")


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.status.busy"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def test_notebooks_expected_tutorials_exist() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert names >= EXPECTED, f"missing tutorials: {sorted(EXPECTED - names)}"


@pytest.mark.parametrize("path", _params())
def test_notebook_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs or execution counts"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state is an output too"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", _params())
def test_notebook_ends_with_check_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    last = nb.cells[-1] if nb.cells else None
    assert last is not None and last.cell_type == "code", f"{path.name} must end with a code cell"
    tree = ast.parse(last.source)
    assert any(isinstance(node, ast.Assert) for node in ast.walk(tree)), (
        f"{path.name}: the last cell must check the outcome with an assert"
    )


@pytest.mark.notebook
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", _params())
def test_notebook_runs_in_fresh_kernel(
    path: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(workdir / path.name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_IDENTITY_CELL))
    client = NotebookClient(
        nb,
        timeout=120,
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    failure: CellExecutionError | None = None
    try:
        client.execute(env=_kernel_env(), cwd=str(workdir))
    except CellExecutionError as exc:  # reported below, outside the handler: one traceback only
        failure = exc
    if failure is not None:
        pytest.fail(f"{path.name} failed:\n{_ANSI.sub('', str(failure))}", pytrace=False)

    identity = _kernel_identity(nb)
    assert identity["prefix"] == sys.prefix, f"kernel ran outside this venv: {identity}"
    assert Path(str(identity["spawn_lab"])).is_relative_to(ROOT), identity
    # ipykernel sets its inline backend when MPLBACKEND is unset; an inherited Agg hides plots
    assert identity["mplbackend"] in (None, "module://matplotlib_inline.backend_inline"), identity
    assert Path(str(identity["cwd"])).resolve() == workdir.resolve(), identity

    # Cell timings for --durations hunting, without record_property (a warning under xunit2).
    seconds = [_cell_seconds(cell) for cell in nb.cells[:-1]]
    slowest = max(range(len(seconds)), key=seconds.__getitem__, default=0)
    request.node.user_properties += [
        ("cells_seconds", round(sum(seconds), 3)),
        ("slowest_cell", slowest),
        ("slowest_cell_seconds", round(seconds[slowest], 3) if seconds else 0.0),
    ]
