"""README.md's two opening commands: the explorer one works, the test one is what CI runs."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from sanctum_store.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The first line of each of README.md's first two ```bash blocks."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2, "README.md must open with two ```bash blocks"
    return [block.strip().splitlines()[0] for block in blocks[:2]]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = readme_commands()[1]
    assert "pytest" in test_command
    ci = ROOT / ".ci" / "run"
    assert test_command in ci.read_text(encoding="utf-8").splitlines()
    assert os.access(ci, os.X_OK), ".ci/run must be executable"


def test_the_explorer_command_fills_an_empty_archive_then_opens_the_app(tmp_path, monkeypatch):
    explorer_command = readme_commands()[0]
    steps = [shlex.split(step) for step in explorer_command.split("&&")]
    assert steps[0][:4] == ["python", "-m", "pip", "install"]
    assert steps[-1][-1] == "explorer/app.py" and (ROOT / steps[-1][-1]).exists()
    # The middle step is a real CLI command: run it (with a small demo) on an empty archive.
    demo = steps[1]
    assert demo[0] == "sanctum-store"
    monkeypatch.chdir(tmp_path)
    from sanctum_store import demo as demo_module

    real_plan = demo_module.plan_runs
    monkeypatch.setattr(
        demo_module, "plan_runs", lambda n, seed=0, now=None: real_plan(3, seed, now=now)
    )
    first = CliRunner().invoke(main, demo[1:])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "sanctum.db").exists()
    again = CliRunner().invoke(main, demo[1:])
    assert "nothing to do" in again.output
