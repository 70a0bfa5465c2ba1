"""The tutorials: each notebook runs top to bottom in real kernels, again and again, and is clean.

Every ``notebooks/*.ipynb`` is executed with nbclient in a new ``python3`` kernel started from this
virtualenv, in a temporary copy of ``notebooks/`` (so a notebook may write files without dirtying
the repository), with ``MPLBACKEND`` removed (an inherited ``Agg`` hides every inline figure). A
cell that raises fails the test with that cell's traceback.

Each notebook is **re-run in the same folder**, as users re-run tutorials under ``make lab``: first
top to bottom in a new kernel, then Run All again in that same kernel, then top to bottom once more
in another new kernel (Restart and Run All). The default store is the SQLite file ``spawn_lab.db``
in the working directory, so a re-run sees whatever the run before it stored; a tutorial must
either name its store (``memory://``) or deal with its file on purpose.

A code cell tagged ``restart-kernel-before`` makes the harness **really restart the kernel**
(``KernelManager.restart_kernel``: shutdown request, new process, new client) before running it,
as Kernel > Restart would; the cells after it run in the new process.

Static tests check that notebooks are committed without outputs, end with a check cell that
asserts the outcome, and open every ``ActorSystem`` with an explicit ``store=``.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

if TYPE_CHECKING:
    from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: The tutorials of issue 7, all of which have landed.
EXPECTED = {
    "01_first_actor.ipynb",
    "02_spawning.ipynb",
    "03_workflows.ipynb",
    "04_persistence_and_time_travel.ipynb",
    "05_timers_and_stepping.ipynb",
    "06_protobuf_actors_and_grpc.ipynb",
    "07_real_spawn.ipynb",
    "08_projections_and_views.ipynb",
    "09_debugging_a_broken_mesh.ipynb",
}

#: A code cell with this tag runs in a restarted kernel (the harness restarts it first).
RESTART_TAG = "restart-kernel-before"
#: Notebooks that must restart the kernel at least once (issue 7: "really restart the kernel").
MUST_RESTART = {"04_persistence_and_time_travel.ipynb"}

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
    "pid": _os.getpid(),
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
                return json.loads(line.removeprefix("SPAWN_LAB_KERNEL "))
    raise AssertionError("the kernel identity cell printed nothing")


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.status.busy"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _python_of(cell: nbformat.NotebookNode) -> ast.Module:
    """A code cell as Python: IPython syntax (magics, ``!``) translated, top-level await allowed."""
    from IPython.core.inputtransformer2 import TransformerManager

    source = TransformerManager().transform_cell(cell.source)
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(source, "<cell>", "exec", flags=flags, dont_inherit=True)  # type: ignore[no-any-return]


@dataclass
class NotebookRun:
    """Executions of a notebook in one kernel session: the executed cells (every round, then the
    identity cell), the kernel pids it ran in, its time, and the first failure."""

    nb: nbformat.NotebookNode
    rounds: int
    pids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    failure: str = ""


async def _restart(client: NotebookClient) -> int:
    """Restart the kernel as Kernel > Restart does, then talk to the new one; its pid."""
    from jupyter_client.utils import ensure_async

    km, kc = client.km, client.kc
    await ensure_async(km.restart_kernel(now=False))  # shutdown request first: atexit runs
    kc.stop_channels()
    client.kc = None
    await client.async_start_new_kernel_client()
    return int(km.provisioner.pid)


async def _drive(
    client: NotebookClient, nb: nbformat.NotebookNode, run: NotebookRun, cwd: str
) -> None:
    """``NotebookClient.execute`` cell by cell, restarting the kernel at tagged cells."""
    from nbclient.exceptions import CellExecutionError

    async with client.async_setup_kernel(env=_kernel_env(), cwd=cwd):
        run.pids.append(int(client.km.provisioner.pid))
        per_round = (len(nb.cells) - 1) // run.rounds
        index = 0
        try:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code" and RESTART_TAG in _tags(cell):
                    run.pids.append(await _restart(client))
                await client.async_execute_cell(
                    cell,
                    index,
                    execution_count=client.code_cells_executed + 1,
                )
        except CellExecutionError as exc:  # reported by the test, outside any handler
            where = f"round {index // per_round + 1} of {run.rounds} in this kernel"
            run.failure = f"({where}) " + _ANSI.sub("", str(exc))
        client.set_widgets_metadata()


def _execute(workdir: Path, name: str, rounds: int = 1) -> NotebookRun:
    """Run ``workdir/name`` top to bottom ``rounds`` times in one new kernel (Run All, then Run All
    again) whose working directory is ``workdir``; then the identity cell."""
    from nbclient import NotebookClient

    source = nbformat.read(workdir / name, as_version=4)
    nb = nbformat.from_dict(dict(source))
    nb.cells = [nbformat.from_dict(dict(cell)) for _ in range(rounds) for cell in source.cells]
    nb.cells.append(nbformat.v4.new_code_cell(_IDENTITY_CELL))
    client = NotebookClient(
        nb,
        timeout=120,
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    run = NotebookRun(nb, rounds)
    started = time.perf_counter()
    asyncio.run(_drive(client, nb, run, str(workdir)))
    run.seconds = time.perf_counter() - started
    return run


def _check_run(run: NotebookRun, workdir: Path, name: str, which: str) -> None:
    if run.failure:
        pytest.fail(f"{name} failed on its {which} run:\n{run.failure}", pytrace=False)
    identity = _kernel_identity(run.nb)
    assert identity["prefix"] == sys.prefix, f"kernel ran outside this venv: {identity}"
    assert Path(str(identity["spawn_lab"])).is_relative_to(ROOT), identity
    # ipykernel sets its inline backend when MPLBACKEND is unset; an inherited Agg hides plots
    assert identity["mplbackend"] in (None, "module://matplotlib_inline.backend_inline"), identity
    assert Path(str(identity["cwd"])).resolve() == workdir.resolve(), identity
    # the last cells ran in the kernel started last: a tagged restart really made a new process
    assert identity["pid"] == run.pids[-1], (identity, run.pids)
    assert len(set(run.pids)) == len(run.pids), f"a restart kept the same process: {run.pids}"


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


@pytest.mark.parametrize("path", _params())
def test_notebook_names_the_store_of_every_system(path: Path) -> None:
    """No tutorial falls back to ``spawn_lab.db`` by accident: a re-run would inherit its state."""
    nb = nbformat.read(path, as_version=4)
    unnamed = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for node in ast.walk(_python_of(cell)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            keywords = {k.arg for k in node.keywords}
            if called == "ActorSystem" and "store" not in keywords and None not in keywords:
                unnamed.append(f"cell {index}, line {node.lineno}")
    assert unnamed == [], f"{path.name}: ActorSystem without store= at {unnamed}"


@pytest.mark.parametrize("path", _params())
def test_notebook_restart_tags_are_on_code_cells(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if RESTART_TAG in _tags(cell)]
    assert all(nb.cells[i].cell_type == "code" and i > 0 for i in tagged), tagged
    if path.name in MUST_RESTART:
        assert tagged, f"{path.name} must restart the kernel (a cell tagged {RESTART_TAG!r})"


@pytest.mark.notebook
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", _params())
def test_notebook_runs_again_in_the_same_folder(
    path: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A fresh run, Run All again in the same kernel, then a run in a new kernel, one folder."""
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    first = _execute(workdir, path.name, rounds=2)
    _check_run(first, workdir, path.name, "first kernel's")
    second = _execute(workdir, path.name)
    _check_run(second, workdir, path.name, "new kernel's")
    assert not (workdir / "spawn_lab.db").exists(), (
        f"{path.name} wrote the default store spawn_lab.db: name a store for every system"
    )

    # Timings for --durations hunting, without record_property (a warning under xunit2).
    seconds = [_cell_seconds(cell) for cell in second.nb.cells[:-1]]
    slowest = max(range(len(seconds)), key=seconds.__getitem__, default=0)
    request.node.user_properties += [
        ("two_rounds_one_kernel_seconds", round(first.seconds, 3)),
        ("new_kernel_run_seconds", round(second.seconds, 3)),
        ("kernels_per_run", len(second.pids)),
        ("cells_seconds", round(sum(seconds), 3)),
        ("slowest_cell", slowest),
        ("slowest_cell_seconds", round(seconds[slowest], 3) if seconds else 0.0),
    ]
