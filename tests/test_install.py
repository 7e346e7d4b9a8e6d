"""What a training node installs: ``pip install sanctum-store`` records runs without the
explorer's dependencies (Streamlit, Altair)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RECORD = textwrap.dedent(
    """
    import importlib.util, json, sys
    import sanctum_store
    from sanctum_store import Archive, SnapshotWriter, demo

    missing = [m for m in ("streamlit", "altair") if importlib.util.find_spec(m) is not None]
    assert not missing, f"installed without being asked for: {missing}"
    url = f"sqlite:///{sys.argv[1]}"
    with SnapshotWriter(url, run_id="node-7") as writer:
        for snapshot in demo.snapshot_stream(4, 3, 5, seed=1):
            writer.write(snapshot)
    with Archive(url, create=False) as archive:
        runs = archive.runs()
        print(json.dumps({"runs": runs["run_id"].tolist(), "status": runs["status"].tolist(),
                          "snapshots": int(runs["snapshot_count"].sum())}))
    """
)


@pytest.mark.slow
def test_the_core_install_records_a_run_without_the_explorer(tmp_path):
    venv = tmp_path / "node"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", ROOT / "requirements.lock", ROOT],
        check=True,
        cwd=tmp_path,
    )
    result = subprocess.run(
        [str(python), "-c", RECORD, str(tmp_path / "node.db")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        '{"runs": ["node-7"], "status": ["finished"], "snapshots": 5}'
    ), result.stdout
