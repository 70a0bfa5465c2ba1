"""Drive the lab in a real browser: JupyterLab + Debian Chromium + Playwright, end to end.

Run as a script (the pytest test ``test_browser.py`` does, in a subprocess, so Playwright's
sync API never meets an asyncio loop of the test process)::

    python tests/ui/browser_check.py --out /tmp/shots

It writes a small notebook into a fresh folder, starts JupyterLab on 127.0.0.1 with a token
on a free port (private settings: no autosave, no virtualised cells, a private workspace),
opens the notebook in headless Chromium, runs all cells, fills in the Spawn form, clicks
Spawn and Send, and checks that the graph image and the inspector changed. Screenshots and a
JSON report go to ``--out``. Exit status 0 means every check passed. The server (and its
kernels, via ``POST /api/shutdown``) is stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SETUP = """\
from spawn_lab.core.model import Forward, Value
from spawn_lab.runtime.actors import Actor
from spawn_lab.runtime.system import ActorSystem
from spawn_lab.ui import lab

system = ActorSystem("browser-demo", store="memory://")
counter = Actor("counter", state={"value": 0})

@counter.action
def add(ctx, amount):
    total = ctx.state["value"] + amount
    return Value(total, state={"value": total})

logger = Actor("logger", stateful=False)

@logger.action
def log(ctx, payload):
    return payload

worker = Actor("worker", kind="UNNAMED", state={"greeted": 0})

@worker.action
def hello(ctx, payload):
    return Value(ctx.self.name, state={"greeted": ctx.state["greeted"] + 1},
                 forward=Forward("logger", "log"))

for actor in (counter, logger, worker):
    system.register(actor)
system.ask("counter", "add", 1)
"""
SHOW = "layout = lab(system)\nlayout"


def notebook() -> dict[str, Any]:
    def cell(index: int, source: str) -> dict[str, Any]:
        return {
            "id": f"cell-{index}",
            "cell_type": "code",
            "metadata": {},
            "source": source,
            "outputs": [],
            "execution_count": None,
        }

    return {
        "cells": [cell(1, SETUP), cell(2, SHOW)],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


#: The notebook is the current widget and its kernel is connected and idle.
READY = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
    && panel.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
#: Some cell has an execution count or is running.
STARTED = """() => [...document.querySelectorAll('.jp-InputPrompt')]
  .some(p => /\\[(\\d+|\\*)\\]/.test(p.textContent))"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(folder: Path) -> None:
    """No autosave (the test must not rewrite its notebook), every cell in the DOM, no dialog."""
    files = {
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
            "windowingMode": "none",
            "autoStartDefaultKernel": True,  # else a "Select Kernel" dialog races the first run
        },
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
    }
    for name, value in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def start_server(root: Path, port: int, token: str, logs: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # env-notes §2 gotcha
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(root / ".workspaces")
    env["JUPYTER_RUNTIME_DIR"] = str(root / ".runtime")
    env["JUPYTER_CONFIG_DIR"] = str(root / ".config")
    settings(root / ".settings")
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        f"--LabApp.user_settings_dir={root / '.settings'}",
        "--LabApp.expose_app_in_browser=True",
    ]
    log = open(logs, "wb")  # noqa: SIM115 - closed with the process in stop_server
    return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(port: int, token: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"JupyterLab did not answer on port {port} within {timeout} s")


def stop_server(server: subprocess.Popen[bytes], port: int, token: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/shutdown",
        method="POST",
        headers={"Authorization": f"token {token}"},
    )
    with contextlib.suppress(OSError):  # already gone
        urllib.request.urlopen(request, timeout=10).close()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=5)


def shoot(page: Any, path: Path) -> None:
    """The whole lab (JupyterLab scrolls inside its own panel, so shoot the element)."""
    page.locator(".spawn-lab").screenshot(path=str(path))


def drive(port: int, token: str, out: Path, report: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        try:
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            started = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/lab/tree/lab_check.ipynb?reset&token={token}")
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']:visible", timeout=60_000
            )
            dialog = page.locator(".jp-Dialog .jp-mod-accept")
            if dialog.count():  # a kernel chooser despite the setting: take the preferred kernel
                dialog.first.click()
                report["kernel_dialog"] = True
            page.wait_for_function(READY, timeout=60_000)
            page.click("#jp-MainMenu >> text=Run")
            page.click(".lm-Menu-content >> text=Run All Cells")
            try:
                page.wait_for_function(STARTED, timeout=15_000)
            except Exception:  # the click raced JupyterLab's start-up: run the same command
                report["run_all_retried"] = True
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            graph = page.locator(".spawn-lab-graph")
            graph.wait_for(timeout=60_000)
            page.wait_for_function(
                "() => { const i = document.querySelector('.spawn-lab-graph');"
                " return i && i.naturalWidth > 0; }",
                timeout=30_000,
            )
            report["lab_shown_s"] = round(time.monotonic() - started, 1)
            page.click(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")  # room for the lab
            first_src = graph.get_attribute("src")
            first_inspector = page.locator(".spawn-lab-inspector").inner_text()
            shoot(page, out / "1-lab-open.png")

            page.fill(".spawn-lab-spawn-name input", "w1")
            page.click("button.spawn-lab-spawn")
            page.wait_for_selector("text=spawned w1 from worker", timeout=20_000)
            page.wait_for_function(
                "() => document.querySelector('.spawn-lab-inspector').innerText.includes('w1')",
                timeout=20_000,
            )
            shoot(page, out / "2-spawned.png")

            page.click("button.spawn-lab-send")
            page.wait_for_selector(".spawn-lab-result >> text=reply:", timeout=20_000)
            page.wait_for_function(
                "() => document.querySelector('.spawn-lab-state')"
                ".innerText.includes('\"greeted\": 1')",
                timeout=20_000,
            )
            page.wait_for_function(
                "(first) => document.querySelector('.spawn-lab-graph')"
                ".getAttribute('src') !== first",
                arg=first_src,
                timeout=20_000,
            )
            time.sleep(0.6)  # let the next ≤4 Hz frame land before the picture is taken
            shoot(page, out / "3-sent.png")
            after_inspector = page.locator(".spawn-lab-inspector").inner_text()
            page.click(".spawn-lab .lm-TabBar-tab >> text=Sequence")
            page.wait_for_selector(".spawn-lab svg >> text=hello", timeout=10_000)
            shoot(page, out / "4-sequence.png")
            report["sequence_shown"] = True
            errors = page.locator(".spawn-lab-errors").inner_text()
            report.update(
                graph_changed=graph.get_attribute("src") != first_src,
                inspector_before=first_inspector[:200],
                inspector_after=after_inspector[:400],
                inspector_changed=after_inspector != first_inspector,
                error_pane=errors.strip()[:300],
                console_errors=[c for c in console if c.startswith("error")][:10],
                total_s=round(time.monotonic() - started, 1),
            )
            if "no errors" not in errors:
                raise AssertionError(f"the lab's error pane shows errors: {errors[:500]}")
            page.click(".spawn-lab .lm-TabBar-tab >> text=Graph")
            page.click("button.spawn-lab-spawn")  # no name: the callback raises, the pane shows it
            page.wait_for_selector(".spawn-lab-errors >> text=Errors: 1 error", timeout=10_000)
            page.wait_for_selector(".spawn-lab-errors >> text=give the new instance a name")
            shoot(page, out / "5-error-pane.png")
            report["callback_error_shown"] = True
            if not (report["graph_changed"] and report["inspector_changed"]):
                raise AssertionError(f"graph or inspector did not change: {report}")
        except Exception:
            page.screenshot(path=str(out / "failure.png"))
            raise
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for screenshots and report")
    options = parser.parse_args()
    out = options.out or Path(tempfile.mkdtemp(prefix="spawn-lab-browser-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {out}", flush=True)
    if not Path(CHROMIUM).exists():
        print(f"FAIL: {CHROMIUM} is missing; install Debian's chromium (scripts/system-deps)")
        return 2
    report: dict[str, Any] = {"ok": False}
    with tempfile.TemporaryDirectory(prefix="spawn-lab-nb-") as folder:
        root = Path(folder)
        (root / "lab_check.ipynb").write_text(json.dumps(notebook()))
        port, token = free_port(), secrets.token_hex(16)
        server = start_server(root, port, token, out / "jupyterlab.log")
        try:
            wait_ready(port, token, server)
            drive(port, token, out, report)
            report["ok"] = True
        except Exception as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            stop_server(server, port, token)
            (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
