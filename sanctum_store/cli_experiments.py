"""``sanctum-store verdict`` and ``sanctum-store report``: experiment verdicts on the command
line (see :mod:`sanctum_store.experiments`)."""

from __future__ import annotations

from pathlib import Path

import click

from sanctum_store import metrics
from sanctum_store.cli_options import db_option, fail
from sanctum_store.db import resolve_url

#: ``verdict``'s options that are an experiment's settings (the rest choose what to do).
_SETTINGS = (
    "by", "baseline", "metric", "last_k", "pair_by",
    "min_effect", "min_runs", "confidence", "n_boot", "seed",
)  # fmt: skip


@click.command("verdict")
@click.option("--by", metavar="ATTRIBUTE", help="Cohorts by this run attribute.")
@click.option("--baseline", help="The cohort every other is compared with.")
@click.option("--metric", type=click.Choice(tuple(metrics.OUTCOMES)))
@click.option("--task", default=None, help="Only the runs of this task.")
@click.option("--last-k", type=click.IntRange(min=1), help="The episode outcome, last K batches.")
@click.option("--pair-by", type=click.Choice(["auto", "seed", "none"]), default="auto")
@click.option("--min-effect", type=float, default=0.0, show_default=True, help="δ.")
@click.option("--min-runs", type=click.IntRange(min=2), default=5, show_default=True)
@click.option(
    "--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95
)
@click.option("--include-confounded", is_flag=True, help="Keep confounded runs (then BLOCKED).")
@click.option("--n-boot", type=click.IntRange(min=100), default=10_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--save", "save_as", metavar="NAME", help="Save this definition as NAME first.")
@click.option("--experiment", metavar="NAME", help="Evaluate the experiment saved as NAME.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@db_option
def verdict_command(db, task, fmt, include_confounded, save_as, experiment, **given) -> None:
    """Should we keep this change? Decide per cohort by preregistered rules.

    Runs are the unit; intervals are stratified-bootstrap; confounded runs are excluded and
    listed. CONTINUE: the improvement's CI is entirely above --min-effect; STOP: entirely
    below; REVISE: it straddles it; BLOCKED: too few clean runs or pairs, or confounded runs
    included. JSON holds the same tables as the API, as records. --save NAME keeps the
    definition in the archive (a changed one as a new version, the earlier ones kept);
    --experiment NAME evaluates a saved one again, on the runs the archive holds now.

    \b
    Examples:
        sanctum-store verdict --by reward_mode --baseline shaped --metric final_accuracy
        sanctum-store verdict --by reward_mode --baseline shaped --metric final_accuracy \\
            --min-effect 1 --save reward-ab
        sanctum-store verdict --experiment reward-ab
    """
    from sanctum_store import experiments, saved_experiments
    from sanctum_store.archive import Archive

    settings = {k: v for k, v in given.items() if k in _SETTINGS}
    settings.update(
        filters={"task": task} if task else {}, exclude_confounded=not include_confounded
    )
    if experiment is None and not all(settings[k] for k in ("by", "baseline", "metric")):
        fail("give --by, --baseline and --metric, or --experiment NAME")
    if experiment and save_as:
        fail("--save keeps a definition given here, not one saved already (--experiment)")
    with Archive(resolve_url(db), create=False) as archive:
        try:
            if experiment:
                _, result = saved_experiments.evaluate(archive, experiment)
            else:
                result = experiments.evaluate(archive, **settings)
            if save_as:  # a definition that evaluates, only
                version = saved_experiments.save(archive, save_as, **settings)
                click.echo(f"saved {save_as!r} (version {version})", err=True)
        except (ValueError, LookupError) as e:
            fail(str(e.args[0]))
    click.echo(result.to_json() if fmt == "json" else result.text())


@click.command("report")
@click.argument("name")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HTML file."
)
@db_option
def report_command(name: str, out: Path, db: str | None) -> None:
    """Write one self-contained HTML report of the experiment saved as NAME: the decisions
    and their rules, the charts (embedded: no network needed to view it), the tables, the
    excluded runs and every version of the definition.

    \b
    Example:
        sanctum-store report reward-ab -o reward-ab.html
    """
    from sanctum_store import report, saved_experiments
    from sanctum_store.archive import Archive

    with Archive(resolve_url(db), create=False) as archive:
        try:
            saved, result = saved_experiments.evaluate(archive, name)
        except (ValueError, LookupError) as e:
            fail(str(e.args[0]))
    out.write_text(report.render(saved, result), encoding="utf-8")
    click.echo(f"wrote {out}")
