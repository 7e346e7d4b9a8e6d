"""The command line: help, version, and where the archive is (--db / $SANCTUM_DB / ./sanctum.db)."""

from __future__ import annotations

import inspect
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sanctum_store import __version__
from sanctum_store.cli import main
from sanctum_store.db import ENV_VAR, resolve_url


def _commands(command: click.Command, path: tuple[str, ...] = ("sanctum-store",)):
    """Every command of the CLI with its invocation path, groups and their subcommands too."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(main))


def _example_lines(help_text: str) -> list[str]:
    """The example lines of the help's last paragraph, which must be an ``Example:`` block."""
    last = inspect.cleandoc(help_text).split("\n\n")[-1]
    lines = [line.strip() for line in last.splitlines() if line.strip() not in ("", "\b")]
    assert lines and lines[0] in ("Example:", "Examples:"), (
        f"help does not end with an example:\n{last}"
    )
    return lines[1:]


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_help(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for name in main.commands:
        assert name in result.output


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"sanctum-store, version {__version__}"


def test_there_are_commands_to_check():
    assert "where" in main.commands
    assert len(COMMANDS) > 1


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_ending_with_an_example(runner, path, command):
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
    examples = _example_lines(command.help)
    invocation = " ".join(path)
    assert any(invocation in line for line in examples), (
        f"the example of {invocation!r} does not run it: {examples}"
    )
    # And the rendered --help keeps the example on its own lines (the \b block survives).
    result = runner.invoke(main, [*path[1:], "--help"])
    assert result.exit_code == 0, result.output
    rendered = [line.strip() for line in result.output.splitlines()]
    assert all(line in rendered for line in examples)


# --------------------------------------------------------------------------------------------
# --db / $SANCTUM_DB / ./sanctum.db
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cwd(monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()


def test_default_is_sanctum_db_in_the_working_directory(cwd):
    assert resolve_url() == f"sqlite:///{cwd / 'sanctum.db'}"
    assert resolve_url(None) == resolve_url()


def test_environment_variable_names_the_archive(cwd, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "archives/runs.db")
    assert resolve_url() == f"sqlite:///{cwd / 'archives' / 'runs.db'}"


def test_empty_environment_variable_counts_as_unset(cwd, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_url() == f"sqlite:///{cwd / 'sanctum.db'}"


def test_db_argument_beats_the_environment(cwd, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "from-env.db")
    assert resolve_url("from-flag.db") == f"sqlite:///{cwd / 'from-flag.db'}"


def test_paths_become_absolute_sqlite_urls(cwd, monkeypatch, tmp_path):
    absolute = tmp_path / "elsewhere" / "a.db"
    assert resolve_url(str(absolute)) == f"sqlite:///{absolute.resolve()}"
    assert resolve_url("./sub/../b.db") == f"sqlite:///{cwd / 'b.db'}"
    monkeypatch.setenv("HOME", str(cwd / "home"))
    assert resolve_url("~/c.db") == f"sqlite:///{cwd / 'home' / 'c.db'}"
    assert resolve_url("b.db").startswith("sqlite:////")  # four slashes: an absolute path


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "sqlite:///relative/archive.db",
        "sqlite:////abs/archive.db",
        "sqlite://",
    ],
)
def test_urls_pass_through(cwd, monkeypatch, url):
    assert resolve_url(url) == url
    monkeypatch.setenv(ENV_VAR, url)
    assert resolve_url() == url


def test_where_command_follows_the_convention(runner, tmp_path):
    here = tmp_path.resolve()
    result = runner.invoke(main, ["where"])
    assert result.output.strip() == f"sqlite:///{here / 'sanctum.db'}"
    result = runner.invoke(main, ["where"], env={ENV_VAR: "env.db"})
    assert result.output.strip() == f"sqlite:///{here / 'env.db'}"
    result = runner.invoke(main, ["where", "--db", "flag.db"], env={ENV_VAR: "env.db"})
    assert result.output.strip() == f"sqlite:///{here / 'flag.db'}"
    url = "postgresql+psycopg://me@dbhost/sanctum"
    result = runner.invoke(main, ["where", "--db", url])
    assert result.exit_code == 0
    assert result.output.strip() == url


# --------------------------------------------------------------------------------------------
# compare: the Cohorts page's statistics on the command line
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> str:
    from datetime import UTC, datetime

    from sanctum_store import demo

    url = f"sqlite:///{tmp_path_factory.mktemp('compare') / 'demo.db'}"
    demo.write_demo(url, 6, seed=3, now=datetime.now(UTC))
    return url


def _expected_comparison(url: str, by: str, metric: str, baseline, status: str):
    from sanctum_store import queries, stats
    from sanctum_store.archive import Archive

    with Archive(url, create=False) as archive:
        outcomes = queries.run_outcomes(
            archive.engine, **({} if status == "all" else {"status": status})
        )
    return stats.compare_cohorts(outcomes, by, metric, baseline=baseline)


@pytest.mark.parametrize(
    ("by", "metric", "baseline", "status"),
    [
        ("reward_mode", "final_accuracy", None, "finished"),
        ("reward_mode", "final_accuracy", "sparse", "all"),
        ("reward_mode", "peak_accuracy", None, "all"),
        ("group_id", "mean_reward", None, "all"),
    ],
)
def test_compare_prints_the_same_numbers_as_compare_cohorts(
    runner, demo_url, by, metric, baseline, status
):
    from sanctum_store import stats

    args = ["compare", "--by", by, "--metric", metric, "--db", demo_url]
    args += ["--baseline", baseline] if baseline else []
    args += ["--status", status] if status != "finished" else []  # finished is the default
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    expected = _expected_comparison(demo_url, by, metric, baseline, status)
    assert not expected.empty
    table_text, verdicts = result.output.rstrip("\n").split("\n\n")
    assert table_text == stats.comparison_text(expected).to_string(index=False)
    assert verdicts.splitlines() == expected["verdict"].tolist()
    header, *lines = table_text.splitlines()
    assert header.split() == [c for c in stats.COMPARE_COLUMNS if c != "verdict"]
    for line, r in zip(lines, expected.itertuples(), strict=True):
        cells = dict(zip(header.split(), line.split(), strict=True))
        assert (cells["a"], cells["b"]) == (r.a, r.b)
        assert float(cells["diff"]) == pytest.approx(r.diff, rel=5e-3, nan_ok=True)
        if baseline:
            assert r.a == baseline
    if metric == "mean_reward":  # groups A, B, C each have their own reward mode
        assert all(
            v.startswith("not comparable: the reward definitions differ")
            for v in verdicts.splitlines()
        )


def test_compare_refuses_an_unknown_baseline_or_attribute(runner, demo_url):
    args = ["compare", "--by", "reward_mode", "--metric", "final_accuracy", "--db", demo_url]
    result = runner.invoke(main, [*args, "--baseline", "dense"])
    assert result.exit_code != 0 and "baseline 'dense' is not a cohort" in result.output
    result = runner.invoke(main, [*args[:2], "colour", *args[3:]])
    assert result.exit_code != 0 and "--by must be one of" in result.output
