"""Benchmark: the explorer's queries against large archives, each figure beside its target.

    python bench/query.py [--db URL] [--runs 10000] [--long-runs 3] [--long-snapshots 5000]

Builds two archives, ``--runs`` runs and a tenth of that, quickly: rows go straight into the
tables (COPY on PostgreSQL, executemany on SQLite), bypassing the writer; then it derives what
the writer and ``finish_run`` would have kept (each run's outcomes, every finished run's seeds:
:mod:`sanctum_store.summary`) and reports that one-off cost. Every run has 10
snapshots x 4 envs x 2 seed slots, Tamiyo state, action and blueprint counts, best-run
records, decisions and events, in 4 reward modes x 2 groups x 2 tasks; a few long runs have
``--long-snapshots`` snapshots each. Then it times each query family warm (median of
``--repeat``) on both archives.

``--db`` is a SQLite file path/URL (two files are made next to it) or a PostgreSQL URL (two
schemas, ``bench_<runs>``, are made, and dropped at the end unless ``--keep``). Default: SQLite
in a temporary folder.
SQLite archives are measured as built (no ANALYZE, as a real archive would be); PostgreSQL
after ANALYZE (which autovacuum runs on its own after a bulk load).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import sqlalchemy as sa

from sanctum_store import db, experiments, migrate, queries, stats, summary
from sanctum_store.models import TABLES

MODES = ("shaped", "simplified", "sparse", "escrow")
BLUEPRINTS = ("conv_light", "attention", "norm", "lora")
ACTIONS = ("WAIT", "GERMINATE", "FOSSILIZE", "PRUNE")
SNAPSHOTS_PER_RUN = 10  # 5 batches x (mid-batch, batch end)
ENVS_PER_SNAPSHOT = 4
MAX_EPOCHS = 25
START = datetime(2026, 1, 1)


# ---------------------------------------------------------------------------------------------
# Writing rows fast
# ---------------------------------------------------------------------------------------------


def _filler(column: sa.Column):
    """A value for a NOT NULL column the generator does not set."""
    python_type = column.type.python_type if not isinstance(column.type, sa.JSON) else dict
    return {int: 0, float: 0.0, bool: False, str: ""}.get(python_type, "")


class Bulk:
    """Appends rows to tables with the fastest path the backend has."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.rows = 0

    def insert(self, table_name: str, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        table = TABLES[table_name]
        missing = [
            c
            for c in table.columns
            if c.name not in columns and not c.nullable and not c.primary_key
        ]
        tail = tuple(_filler(c) for c in missing)
        names = columns + [c.name for c in missing]
        self.rows += len(rows)
        if self.postgres:
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cursor:
                quoted = ", ".join(f'"{n}"' for n in names)
                with cursor.copy(f"COPY {table_name} ({quoted}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row + tail)
        else:
            marks = ", ".join("?" * len(names))
            sql = f"INSERT INTO {table_name} ({', '.join(names)}) VALUES ({marks})"
            self.conn.connection.driver_connection.executemany(sql, [row + tail for row in rows])


def _ts(moment: datetime, postgres: bool):
    # SQLite keeps SQLAlchemy's DateTime as text in this exact form.
    return moment if postgres else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def build(url: str, n_runs: int, long_runs: int, long_snapshots: int, seed: int = 0) -> dict:
    """Fill an empty archive at ``url``; returns row counts and the build time."""
    engine = db.create_engine(url)
    migrate.upgrade(engine)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with engine.begin() as conn:
        bulk = Bulk(conn)
        ids = {"snapshot": 0, "env": 0, "seed_set": 0, "best": 0, "decision": 0, "event": 0}
        for r in range(n_runs + long_runs):
            long = r >= n_runs
            n_snapshots = long_snapshots if long else SNAPSHOTS_PER_RUN
            _add_run(bulk, rng, ids, r + 1, n_snapshots, long)
        if bulk.postgres:
            for name in (
                "runs",
                "snapshots",
                "env_states",
                "seed_sets",
                "best_runs",
                "decisions",
                "events",
            ):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
    elapsed = time.perf_counter() - started
    # What the writer keeps with every batch, and finish_run once a run ends.
    started = time.perf_counter()
    with db.for_writing(engine).begin() as conn:
        summary.refresh_run_outcomes(conn)
    outcomes = time.perf_counter() - started
    started = time.perf_counter()
    with db.for_writing(engine).begin() as conn:
        pks = conn.execute(sa.select(TABLES["runs"].c.id)).scalars().all()
        summary.refresh_seeds(conn, pks)
    seeds = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return {"rows": bulk.rows, "seconds": elapsed, "outcomes": outcomes, "seeds": seeds}


def _add_run(bulk: Bulk, rng, ids: dict, pk: int, n_snapshots: int, long: bool) -> None:
    pg = bulk.postgres
    mode = MODES[pk % len(MODES)]
    skill = 60.0 + 4.0 * MODES.index(mode) + rng.normal(0, 2.0)  # cohorts really differ
    first = START + timedelta(minutes=pk)
    step = timedelta(seconds=3)
    last = first + step * (n_snapshots - 1)
    n_batches = n_snapshots // 2
    bulk.insert(
        "runs",
        [
            "id",
            "run_id",
            "task_name",
            "reward_mode",
            "group_id",
            "status",
            "max_batches",
            "max_epochs",
            "first_seen",
            "last_seen",
            "heartbeat_at",
            "snapshot_count",
            "config_seed",
            "config_lr",
        ],
        [
            (
                pk,
                f"{'long' if long else 'bench'}-{pk:06d}",
                ("cifar10", "tinystories")[pk % 2],
                mode,
                "AB"[(pk // 4) % 2],
                "finished",
                n_batches,
                MAX_EPOCHS,
                _ts(first, pg),
                _ts(last, pg),
                _ts(last, pg),
                n_snapshots,
                pk,
                float(rng.choice([1e-4, 3e-4, 1e-3])),
            )
        ],
    )
    snapshots, envs, seed_sets, seeds, tamiyo, actions, blueprints = [], [], [], [], [], [], []
    fossilized = pruned = 0
    for i in range(n_snapshots):
        ids["snapshot"] += 1
        sid = ids["snapshot"]
        batch, epoch = i // 2, (MAX_EPOCHS // 2, MAX_EPOCHS)[i % 2]
        progress = (batch + epoch / MAX_EPOCHS) / max(n_batches, 1)
        if i % 2:
            fossilized += 1
            pruned += int(rng.random() < 0.5)
        snapshots.append(
            (
                sid,
                pk,
                _ts(first + step * i, pg),
                f"k{i}",
                batch,
                n_batches,
                epoch,
                MAX_EPOCHS,
                fossilized,
                pruned,
                fossilized + pruned + 1,
                float(rng.normal(1.0, 0.3)),
            )
        )
        tamiyo.append(
            (
                sid,
                float(1.5 - progress + rng.normal(0, 0.05)),
                float(abs(rng.normal(0.01, 0.005))),
                *(float(x) for x in rng.uniform(0.1, 1.0, 3)),
            )
        )
        for a, action in enumerate(ACTIONS):
            actions.append(
                (sid, "batch", action, int(epoch * ENVS_PER_SNAPSHOT * (0.7, 0.15, 0.1, 0.05)[a]))
            )
        for b, blueprint in enumerate(BLUEPRINTS[:3]):
            blueprints.append(
                (
                    sid,
                    blueprint,
                    fossilized + pruned + b,
                    fossilized if b == 0 else 0,
                    pruned if b == 1 else 0,
                )
            )
        for env in range(ENVS_PER_SNAPSHOT):
            ids["env"] += 1
            ids["seed_set"] += 1
            accuracy = float(skill * (0.6 + 0.4 * epoch / MAX_EPOCHS) + rng.normal(0, 1.0))
            envs.append(
                (
                    ids["env"],
                    sid,
                    pk,
                    env,
                    env,
                    env,
                    epoch,
                    accuracy,
                    accuracy + 0.5,
                    1_200_000,
                    int(rng.integers(0, 50_000)),
                    float(rng.normal(epoch / 10, 0.5)),
                    ids["seed_set"],
                    "healthy",
                    mode,
                )
            )
            seed_sets.append((ids["seed_set"], pk, f"d{ids['seed_set']}"))
            for slot in range(2):
                stage = (
                    ("TRAINING", "BLENDING")[slot]
                    if epoch < MAX_EPOCHS
                    else ("FOSSILIZED", "PRUNED")[slot]
                )
                seeds.append(
                    (
                        ids["seed_set"],
                        slot,
                        f"r0c{slot}",
                        f"r0c{slot}",
                        stage,
                        BLUEPRINTS[(pk + env + slot) % 4],
                        epoch % 7,
                        epoch if epoch == MAX_EPOCHS else 0,
                        "policy_prune" if stage == "PRUNED" else "",
                    )
                )
    bulk.insert(
        "snapshots",
        [
            "id",
            "run_pk",
            "captured_ts",
            "dedup_key",
            "current_batch",
            "max_batches",
            "current_epoch",
            "max_epochs",
            "cumulative_fossilized",
            "cumulative_pruned",
            "cumulative_germinated",
            "aggregate_mean_reward",
        ],
        snapshots,
    )
    bulk.insert(
        "tamiyo_states",
        [
            "snapshot_id",
            "entropy",
            "kl_divergence",
            "head_op_entropy",
            "head_slot_entropy",
            "head_blueprint_entropy",
        ],
        tamiyo,
    )
    bulk.insert("action_counts", ["snapshot_id", "scope", "action", "count"], actions)
    bulk.insert(
        "blueprint_counts",
        ["snapshot_id", "blueprint_id", "spawns", "fossilized", "prunes"],
        blueprints,
    )
    bulk.insert("seed_sets", ["id", "run_pk", "digest"], seed_sets)
    bulk.insert(
        "env_states",
        [
            "id",
            "snapshot_id",
            "run_pk",
            "env_key",
            "position",
            "env_id",
            "current_epoch",
            "host_accuracy",
            "best_accuracy",
            "host_params",
            "fossilized_params",
            "cumulative_reward",
            "seeds_id",
            "status",
            "reward_mode",
        ],
        envs,
    )
    bulk.insert(
        "seed_states",
        [
            "seed_set_id",
            "position",
            "slot_key",
            "slot_id",
            "stage",
            "blueprint_id",
            "epochs_in_stage",
            "epochs_total",
            "prune_reason",
        ],
        seeds,
    )
    best, decisions, events = [], [], []
    for k in range(3):
        ids["best"] += 1
        peak = float(skill + rng.normal(3, 1))
        best.append(
            (
                ids["best"],
                pk,
                f"rec{ids['best']}",
                f"rec{ids['best']}",
                k,
                k,
                MAX_EPOCHS,
                peak,
                peak - abs(float(rng.normal(0, 0.5))),
                1.02,
                ids["seed_set"] - k,
                mode,
            )
        )
    for k in range(4):
        ids["decision"] += 1
        confidence = float(rng.uniform(0, 1))
        decisions.append(
            (
                ids["decision"],
                pk,
                f"d{ids['decision']}",
                f"d{ids['decision']}",
                k % n_batches,
                MAX_EPOCHS,
                k,
                ACTIONS[k],
                confidence,
                float(rng.normal(0.2, 0.3)),
                float(rng.normal(confidence - 0.4, 0.3)),
                "2026-01-01T00:00:00",
            )
        )
    for k in range(5):
        ids["event"] += 1
        events.append(
            (
                ids["event"],
                pk,
                k,
                "00:00:00",
                ("SEED_GERMINATED", "PPO_UPDATE_COMPLETED")[k % 2],
                f"event {k} of run {pk}",
                k,
            )
        )
    bulk.insert(
        "best_runs",
        [
            "id",
            "run_pk",
            "record_key",
            "record_id",
            "env_id",
            "episode",
            "epoch",
            "peak_accuracy",
            "final_accuracy",
            "growth_ratio",
            "seeds_id",
            "reward_mode",
        ],
        best,
    )
    bulk.insert(
        "decisions",
        [
            "id",
            "run_pk",
            "decision_key",
            "decision_id",
            "batch",
            "epoch",
            "env_id",
            "chosen_action",
            "confidence",
            "expected_value",
            "actual_reward",
            "timestamp",
        ],
        decisions,
    )
    bulk.insert(
        "events", ["id", "run_pk", "seq", "timestamp", "event_type", "message", "episode"], events
    )


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def timed(fn, repeat: int) -> float:
    """Median wall time of ``fn`` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def families(engine: sa.Engine, n_runs: int) -> dict[str, tuple[object, float | None]]:
    """Query families: name -> (callable, target in ms or None for information only)."""
    middle = f"bench-{n_runs // 2:06d}"
    longest = f"long-{n_runs + 1:06d}"

    def cohort_comparison():
        outcomes = queries.run_outcomes(engine)
        return stats.compare_cohorts(outcomes, "reward_mode", "final_accuracy")

    # The explorer's whole-archive pages look at the 200 most recent runs by default.
    recent = {"run_id": queries.run_index(engine, limit=200)["run_id"].tolist()}

    return {
        "runs listing (newest 100)": (lambda: queries.list_runs(engine), 200),
        "runs listing sorted by final_accuracy": (
            lambda: queries.list_runs(engine, sort="final_accuracy"),
            200,
        ),
        "runs listing filtered + search": (
            lambda: queries.list_runs(engine, reward_mode="sparse", search="00"),
            200,
        ),
        "count_runs": (lambda: queries.count_runs(engine, group_id="A"), 200),
        "leaderboard (top 100)": (lambda: queries.leaderboard(engine), 200),
        "run_outcomes (all runs)": (lambda: queries.run_outcomes(engine), 200),
        "cohort comparison (run_outcomes + compare_cohorts)": (cohort_comparison, 200),
        "experiment verdict (evaluate: 4 cohorts, 10,000 resamples)": (
            lambda: experiments.evaluate(
                engine, by="reward_mode", baseline="shaped", metric="final_accuracy"
            ),
            1000,
        ),
        "long run series, mean (5k snapshots)": (
            lambda: queries.run_series(engine, longest, "host_accuracy"),
            200,
        ),
        "long run series, per env": (
            lambda: queries.run_series(engine, longest, "host_accuracy", per_env=True),
            200,
        ),
        "long run series, tamiyo entropy": (
            lambda: queries.run_series(engine, longest, "entropy"),
            200,
        ),
        "per-run: run_series": (lambda: queries.run_series(engine, middle, "host_accuracy"), None),
        "per-run: decision_table": (lambda: queries.decision_table(engine, middle), None),
        "per-run: seed_funnel": (lambda: queries.seed_funnel(engine, run_id=middle), None),
        "per-run: action_mix": (lambda: queries.action_mix(engine, run_id=middle), None),
        "list_runs(search=a run id): scans run labels": (
            lambda: queries.list_runs(engine, search=middle),
            None,
        ),
        "cohort_curves (all runs)": (
            lambda: queries.cohort_curves(engine, "reward_mode", "host_accuracy"),
            None,
        ),
        "seed_funnel (all runs, by cohort)": (
            lambda: queries.seed_funnel(engine, cohort="reward_mode"),
            None,
        ),
        "seed_funnel (200 recent runs)": (lambda: queries.seed_funnel(engine, **recent), None),
        "seed_lifespans (200 recent runs)": (
            lambda: queries.seed_lifespans(engine, **recent),
            None,
        ),
        "time_in_stage (200 recent runs)": (
            lambda: queries.time_in_stage(engine, by=None, **recent),
            None,
        ),
        "prune_reasons (200 recent runs)": (lambda: queries.prune_reasons(engine, **recent), None),
        "calibration (all runs)": (lambda: queries.calibration(engine), None),
        "search_events(text)": (lambda: queries.search_events(engine, text="run 5"), None),
    }


def _archive_urls(base: str | None, sizes: list[int], workdir: Path) -> dict[int, str]:
    if base is None or db.is_sqlite(db.resolve_url(base)):
        folder = workdir if base is None else db.sqlite_path(db.resolve_url(base)).parent
        stem = "bench" if base is None else db.sqlite_path(db.resolve_url(base)).stem
        urls = {}
        for n in sizes:
            path = folder / f"{stem}-{n}.db"
            for leftover in folder.glob(f"{path.name}*"):
                leftover.unlink()
            urls[n] = f"sqlite:///{path}"
        return urls
    admin = sa.create_engine(base)
    urls = {}
    with admin.begin() as conn:
        for n in sizes:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS bench_{n} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA bench_{n}")
            sep = "&" if "?" in base else "?"
            urls[n] = f"{base}{sep}options={quote(f'-csearch_path=bench_{n}')}"
    admin.dispose()
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="SQLite path/URL or PostgreSQL URL (default: a temp folder)")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--long-runs", type=int, default=3)
    parser.add_argument("--long-snapshots", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Keep the PostgreSQL schemas.")
    args = parser.parse_args()

    sizes = [max(args.runs // 10, 1), args.runs]
    with tempfile.TemporaryDirectory() as tmp:
        urls = _archive_urls(args.db, sizes, Path(tmp))
        results: dict[int, dict[str, float]] = {}
        for n in sizes:
            built = build(urls[n], n, args.long_runs, args.long_snapshots)
            print(
                f"built {n:,} runs + {args.long_runs} x {args.long_snapshots:,}-snapshot runs: "
                f"{built['rows']:,} rows in {built['seconds']:.1f} s "
                f"({sa.make_url(urls[n]).get_backend_name()}); then derived their outcomes in "
                f"{built['outcomes']:.1f} s and their seeds in {built['seeds']:.1f} s"
            )
            engine = db.create_engine(urls[n])
            plan = families(engine, n)
            results[n] = {name: timed(fn, args.repeat) for name, (fn, _) in plan.items()}
            engine.dispose()
        small, large = sizes
        print()
        print(f"{'query family':<52} {small:>8,} runs {large:>8,} runs  ratio  target")
        for name, (_, target) in plan.items():
            a, b = results[small][name], results[large][name]
            ratio = b / a if a else float("inf")
            if target is not None:
                verdict = f"<= {target} ms: {'ok' if b <= target else 'MISSED'}"
            elif name.startswith("per-run"):
                verdict = f"<= 1.5x: {'ok' if ratio <= 1.5 else 'MISSED'}"
            else:
                verdict = "(information)"
            print(f"{name:<52} {a:>10.1f} ms {b:>10.1f} ms {ratio:>5.2f}x  {verdict}")
        if not args.keep:
            _drop_postgres_schemas(args.db, sizes)


def _drop_postgres_schemas(base: str | None, sizes: list[int]) -> None:
    if base is None or db.is_sqlite(db.resolve_url(base)):
        return  # temporary SQLite files go with their folder; named ones stay
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        for n in sizes:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS bench_{n} CASCADE")
    admin.dispose()


if __name__ == "__main__":
    main()
