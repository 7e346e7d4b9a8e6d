"""Streaming exports (CSV and Parquet, a chunk at a time) and `sanctum-store export`, on the
hand-checked archive of test_queries (SQLite and PostgreSQL)."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_queries import engine, url  # noqa: F401  (module fixtures: the same archive)

from sanctum_store import export, queries
from sanctum_store.cli import main


def comparable(df: pd.DataFrame) -> list[tuple]:
    """Rows with NaN/NA as None and floats rounded, so files and frames compare exactly."""
    out = []
    for row in df.astype(object).itertuples(index=False):
        out.append(
            tuple(
                None
                if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA
                else round(v, 9)
                if isinstance(v, float)
                else v
                for v in row
            )
        )
    return out


def test_runs_round_trip_through_csv_and_parquet(engine, tmp_path):
    expected = queries.list_runs(engine, limit=None).drop(columns=["status"])
    query = export.query_for("runs")
    assert export.write(engine, query, tmp_path / "runs.csv", "csv", chunk_rows=3) == 4
    csv = pd.read_csv(tmp_path / "runs.csv", parse_dates=["first_seen", "last_seen"])
    assert list(csv.columns) == list(queries.RUN_COLUMNS)
    columns = [c for c in expected.columns if c not in ("first_seen", "last_seen")]
    assert comparable(csv[columns]) == comparable(expected[columns])
    assert csv["first_seen"].tolist() == expected["first_seen"].tolist()

    assert export.write(engine, query, tmp_path / "runs.parquet", "parquet", chunk_rows=1) == 4
    parquet = pq.ParquetFile(tmp_path / "runs.parquet")
    assert parquet.metadata.num_row_groups == 4  # one row group per chunk
    table = parquet.read()
    assert table.schema.field("final_accuracy").type == pa.float64()
    assert table.schema.field("snapshot_count").type == pa.int64()
    assert table.schema.field("first_seen").type == pa.timestamp("us")
    frame = table.to_pandas()
    assert comparable(frame[columns]) == comparable(expected[columns])


def test_every_chunk_has_the_same_types(engine, tmp_path):
    # beta alone: fossilize_rate is NULL in every row, and still a float column.
    query = export.query_for("runs", run_id="beta")
    export.write(engine, query, tmp_path / "beta.parquet", "parquet")
    table = pq.read_table(tmp_path / "beta.parquet")
    assert table.schema.field("fossilize_rate").type == pa.float64()
    assert table.column("fossilize_rate").null_count == 1


def test_series_and_leaderboard_exports(engine, tmp_path):
    query = export.query_for("series", metric="host_accuracy", run_id="alpha")
    export.write(engine, query, tmp_path / "acc.parquet", "parquet")
    series = pd.read_parquet(tmp_path / "acc.parquet")
    assert list(series.columns) == [
        "run_id",
        "snapshot_id",
        "captured_ts",
        "batch",
        "x",
        "env",
        "value",
    ]
    assert list(zip(series["x"], series["env"], series["value"], strict=True)) == [
        (0.5, 0, 50.0),
        (0.5, 1, 60.0),
        (1.0, 0, 70.0),
        (1.0, 1, 80.0),
        (1.4, 0, 40.0),
        (1.4, 1, 44.0),
    ]
    entropy = export.query_for("series", metric="entropy", reward_mode="shaped", x="epoch")
    export.write(engine, entropy, tmp_path / "entropy.csv", "csv")
    policy = pd.read_csv(tmp_path / "entropy.csv")
    assert policy["env"].isna().all()  # one value per snapshot
    assert policy.groupby("run_id").size().to_dict() == {"alpha": 5, "delta": 1}

    board = export.query_for("leaderboard", reward_mode="shaped")
    export.write(engine, board, tmp_path / "board.csv", "csv")
    assert pd.read_csv(tmp_path / "board.csv")["record_id"].tolist() == ["a1", "a2"]
    with pytest.raises(ValueError, match="cannot be filtered by task"):
        export.query_for("leaderboard", task="cifar10")
    with pytest.raises(ValueError, match="unknown metric"):
        export.query_for("series", metric="host_accuracy; DROP TABLE runs")


def test_an_empty_export_is_still_a_valid_file(engine, tmp_path):
    query = export.query_for("runs", task="no such task")
    assert export.write(engine, query, tmp_path / "none.csv", "csv") == 0
    assert list(pd.read_csv(tmp_path / "none.csv").columns) == list(queries.RUN_COLUMNS)
    assert export.write(engine, query, tmp_path / "none.parquet", "parquet") == 0
    assert pq.read_table(tmp_path / "none.parquet").num_rows == 0


def test_rows_stream_from_a_server_side_cursor_in_chunks(engine, tmp_path):
    requested = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def spy(conn, cursor, statement, parameters, context, executemany):
        requested.append(context.execution_options.get("stream_results"))

    chunks = []
    try:
        query = export.query_for("series", metric="host_accuracy")
        written = export.write(
            engine, query, tmp_path / "s.csv", "csv", chunk_rows=5, progress=chunks.append
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", spy)
    assert written == export.count(engine, query) == 12
    assert chunks == [5, 5, 2]
    assert requested[-1] is True


def cli(url, *args):
    return CliRunner().invoke(main, ["export", *args, "--db", url])


def test_export_command(url, tmp_path):
    runs = cli(url, "runs", "--out", str(tmp_path / "runs.parquet"), "--reward-mode", "sparse")
    assert runs.exit_code == 0, runs.output
    assert "2 rows written" in runs.stdout
    assert "exporting runs" in runs.stderr  # the progress bar goes to stderr
    assert pd.read_parquet(tmp_path / "runs.parquet")["run_id"].tolist() == ["beta", "gamma"]

    series = cli(
        url, "series", "--metric", "host_accuracy", "--run-id", "alpha", "--run-id", "beta",
        "--x", "epoch", "--out", str(tmp_path / "acc.csv"),
    )  # fmt: skip
    assert series.exit_code == 0, series.output
    assert pd.read_csv(tmp_path / "acc.csv").groupby("run_id").size().to_dict() == {
        "alpha": 6,
        "beta": 4,
    }
    board = cli(url, "leaderboard", "--format", "csv", "--out", str(tmp_path / "board.txt"))
    assert board.exit_code == 0, board.output
    assert pd.read_csv(tmp_path / "board.txt")["peak_accuracy"].tolist() == [85.0, 70.0, 52.0]


def test_export_command_errors(url, tmp_path):
    out = str(tmp_path / "x.csv")
    no_metric = cli(url, "series", "--out", out)
    assert no_metric.exit_code != 0 and "--metric" in no_metric.stderr
    bad_metric = cli(url, "series", "--metric", "nope", "--out", out)
    assert bad_metric.exit_code != 0 and "unknown metric" in bad_metric.stderr
    bad_filter = cli(url, "leaderboard", "--task", "cifar10", "--out", out)
    assert bad_filter.exit_code != 0 and "--task" in bad_filter.stderr
    missing = CliRunner().invoke(
        main, ["export", "runs", "--db", str(tmp_path / "missing" / "a.db"), "--out", out]
    )
    assert missing.exit_code != 0
    assert "no archive at" in missing.stderr and "db upgrade" in missing.stderr
    assert not (tmp_path / "missing").exists()  # a read command creates nothing
