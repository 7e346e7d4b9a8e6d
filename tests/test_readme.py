"""README.md's two opening commands: the explorer one works, the test one is what CI runs."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path

from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from sanctum_store.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The first line of each of README.md's first two ```bash blocks."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```bash\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2, "README.md must open with two ```bash blocks"
    return [block.strip().splitlines()[0] for block in blocks[:2]]


def test_ci_runs_the_readme_test_command_verbatim_in_a_new_virtual_environment():
    test_command = readme_commands()[1]
    steps = [shlex.split(step) for step in test_command.split("&&")]
    assert steps[0] == ["python3", "-m", "venv", ".venv"]
    assert steps[1] == [".", ".venv/bin/activate"]
    assert steps[2][:6] == ["python", "-m", "pip", "install", "-c", "requirements.lock"]
    assert steps[-1][:3] == ["python", "-m", "pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci
    # .venv is built afresh before the command runs, and is never committed.
    assert ci.index("rm -rf .venv") < ci.index(test_command)
    assert ".venv/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert os.access(ROOT / ".ci" / "run", os.X_OK), ".ci/run must be executable"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_lock_pins_every_dependency_and_the_ranges_stop_below_the_next_major():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = {
        _name(line): line.split("==", 1)[1].split(";")[0].strip()
        for line in lock.splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    wanted = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if _name(r) != "sanctum-store"]
    assert wanted and {_name(r) for r in wanted} <= set(pinned), set(map(_name, wanted)) - set(
        pinned
    )
    # What the installed project needs, all the way down, is pinned too.
    seen, todo = set(), [Requirement("sanctum-store[explorer,postgres,test]")]
    while todo:
        requirement = todo.pop()
        key = (_name(requirement.name), *sorted(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            needed = Requirement(text)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                todo.append(needed)
    seen = {name for name, *_ in seen}
    assert seen - {"sanctum-store"} <= set(pinned), (seen - {"sanctum-store"}) - set(pinned)
    # Each pin satisfies pyproject's range, and the libraries whose majors broke us are capped.
    for requirement in wanted:
        spec = SpecifierSet(re.sub(r"^[\w.\-\[\],]+", "", requirement.split(";")[0]))
        assert spec.contains(pinned[_name(requirement)]), (requirement, pinned[_name(requirement)])
    capped = {_name(r): r for r in wanted}
    for name in ("pandas", "streamlit", "sqlalchemy", "altair", "pytest"):
        assert re.search(r"<\d+(,|$)", capped[name].replace(" ", "")), capped[name]


def test_the_explorer_command_fills_an_empty_archive_then_opens_the_app(tmp_path, monkeypatch):
    explorer_command = readme_commands()[0]
    steps = [shlex.split(step) for step in explorer_command.split("&&")]
    assert steps[0] == ["python3", "-m", "venv", ".venv"]
    assert steps[2][:6] == ["python", "-m", "pip", "install", "-c", "requirements.lock"]
    assert steps[-1] == ["python", "-m", "streamlit", "run", "explorer/app.py"]
    assert (ROOT / steps[-1][-1]).exists()
    # The demo step is a real CLI command: run it (with a small demo) on an empty archive.
    demo = steps[3]
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
