"""Every ```python block in the README and docs/ runs, in a fresh interpreter, as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            found.append((page.name, i, match.group(1)))
    return found


def test_docs_every_page_has_a_working_example() -> None:
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert docs, "no docs pages"
    missing = [p.name for p in docs if not BLOCK.search(p.read_text())]
    assert missing == [], f"docs pages without a python example: {missing}"


@pytest.mark.parametrize(("page", "index", "code"), blocks(), ids=lambda v: str(v)[:30])
def test_docs_example_runs(page: str, index: int, code: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{page} example {index} failed:\n{result.stderr}"
