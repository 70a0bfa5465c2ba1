"""Suite-wide fixtures: every test runs in its own working directory.

The default store of an ActorSystem is ``spawn_lab.db`` in the working directory; running each
test in a fresh temporary folder keeps tests from sharing (or leaving behind) that file.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
