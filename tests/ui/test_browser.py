"""The lab in a real browser (JupyterLab + Debian Chromium + Playwright); see browser_check.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("browser_check.py")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_browser_lab_spawn_and_send_update_graph_and_inspector() -> None:
    # a missing browser is a broken test machine, not a reason to skip (scripts/system-deps)
    assert Path("/usr/bin/chromium").exists(), "install Debian's chromium: scripts/system-deps"
    out = Path(tempfile.mkdtemp(prefix="spawn-lab-browser-"))
    print(f"\nbrowser screenshots and report: {out}")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=220,
        env=env,
        check=False,
    )
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    detail = f"screenshots in {out}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, detail
    assert report["graph_changed"] and report["inspector_changed"], detail
    assert "no errors" in report["error_pane"], detail
    assert {p.name for p in out.glob("*.png")} >= {"1-lab-open.png", "2-spawned.png", "3-sent.png"}
