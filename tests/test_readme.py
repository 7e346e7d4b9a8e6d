"""README.md's test command is exactly what CI runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    """The line of README.md's first ```bash block that runs pytest."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```bash\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    assert block, "README.md has no ```bash block"
    lines = [line for line in block[1].splitlines() if "pytest" in line]
    assert len(lines) == 1, f"expected one pytest line in README's first bash block: {lines}"
    return lines[0]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = ROOT / ".ci" / "run"
    assert readme_test_command() in ci.read_text(encoding="utf-8").splitlines()
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
