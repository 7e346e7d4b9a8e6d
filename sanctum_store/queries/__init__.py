"""Cross-run questions answered in SQL, returned as tidy DataFrames.

Every function takes an :class:`~sqlalchemy.engine.Engine` (or anything with ``.engine``, such
as an :class:`~sanctum_store.Archive`), aggregates inside the database with Core ``select()``
and returns a DataFrame whose columns its docstring lists, with the same dtypes on SQLite and
PostgreSQL. Names that pick a column (metrics, cohort attributes, sort keys) are checked against
whitelists of real columns; user values only ever reach the database as bound parameters.

Definitions (they matter when comparing runs):

* **Trained env**: an env row whose ``current_epoch > 0``. At each batch end esper resets every
  env (accuracy 0, no seeds) while the snapshot keeps the last epoch number, so those rows carry
  defaults, not measurements; env metrics skip them.
* **Final snapshot** of a run: its latest snapshot with a trained env. **final_accuracy**,
  **mean_reward** (env ``cumulative_reward``: the episode's return so far) and
  **growth_ratio** (``(host_params + fossilized_params) / host_params``, 1 when host_params is 0)
  are means over that snapshot's trained envs.
* **peak_accuracy**: the best accuracy any env of the run reached: the largest of any
  snapshot's env ``best_accuracy`` (an env's running maximum), best-run ``peak_accuracy`` and
  the final snapshot's env ``host_accuracy``.
* **batches_done, fossilized, pruned**: ``current_batch`` and the cumulative counters of the
  run's latest snapshot; **fossilize_rate** = fossilized / (fossilized + pruned).
* **Position** (``x="batch"``): ``current_batch + epoch / max_epochs``; a snapshot's epoch is
  its largest env epoch (0 right after a batch-end reset, though the snapshot still shows the
  last one), an env value's epoch is its env's (:func:`run_series` puts a snapshot's envs at the
  snapshot's position). ``x="epoch"`` is the same position in epochs (``current_batch *
  max_epochs + epoch``); ``x="time"`` is seconds since the run's first snapshot.
* **A seed** is one occupant of a slot: the consecutive observations (snapshots in time order)
  of one ``(run, batch, env, slot)`` holding the same blueprint, starting anew when the
  blueprint changes or the stage goes backwards (a slot re-germinated after a prune). Dormant
  slots hold no seed. Snapshots are samples, so a seed that lived and died between two snapshots
  is missed, and a stage counts as reached when the seed was seen in it or in a later stage.

The package's modules, one concern each: :mod:`.runs` (listing, outcomes, look-ups),
:mod:`.series` (metrics over time), :mod:`.leaderboard`, :mod:`.seeds` (lifecycles),
:mod:`.decisions`, :mod:`.attribution`, :mod:`.events`, :mod:`.episodes` (how each episode
ended), :mod:`.confounders` (what makes a run untrustworthy evidence); every public name is available here.
Run outcomes and seeds are read from what :mod:`sanctum_store.summary` keeps.
"""

from sanctum_store.expressions import PRUNED_STAGES, STAGES
from sanctum_store.queries._base import COHORT_ATTRIBUTES, OUTCOME_METRICS, read_connection
from sanctum_store.queries.attribution import SYNERGY_COLUMNS, shapley_ranking, synergy
from sanctum_store.queries.confounders import CONFOUNDER_COLUMNS, run_confounders
from sanctum_store.queries.decisions import (
    DECISION_COLUMNS,
    HEADS,
    VALUE_COLUMNS,
    action_mix,
    calibration,
    decision_table,
    head_entropy,
    value_vs_reward,
)
from sanctum_store.queries.episodes import (
    EPISODE_COLUMNS,
    EPISODE_CURVE_COLUMNS,
    EPISODE_METRICS,
    episode_curves,
    episode_outcomes,
    run_episode_means,
)
from sanctum_store.queries.events import EVENT_COLUMNS, search_events
from sanctum_store.queries.leaderboard import (
    LEADERBOARD_COLUMNS,
    best_run_record,
    leaderboard,
    leaderboard_select,
)
from sanctum_store.queries.runs import (
    FACETS,
    RUN_COLUMNS,
    RUN_INDEX_COLUMNS,
    SNAPSHOT_TIME_COLUMNS,
    count_runs,
    list_runs,
    run_facets,
    run_index,
    run_outcomes,
    runs_select,
    snapshot_times,
)
from sanctum_store.queries.seeds import (
    RATES,
    UNRECORDED,
    conversion_rates,
    lifecycle_totals,
    prune_reasons,
    seed_funnel,
    seed_lifespans,
    time_in_stage,
)
from sanctum_store.queries.series import (
    COHORT_CURVE_COLUMNS,
    SERIES_COLUMNS,
    SERIES_METRICS,
    X_AXES,
    cohort_curves,
    downsample_indices,
    run_series,
    series_select,
)

__all__ = [
    "COHORT_ATTRIBUTES",
    "COHORT_CURVE_COLUMNS",
    "CONFOUNDER_COLUMNS",
    "DECISION_COLUMNS",
    "EPISODE_COLUMNS",
    "EPISODE_CURVE_COLUMNS",
    "EPISODE_METRICS",
    "EVENT_COLUMNS",
    "FACETS",
    "HEADS",
    "LEADERBOARD_COLUMNS",
    "OUTCOME_METRICS",
    "PRUNED_STAGES",
    "RATES",
    "RUN_COLUMNS",
    "RUN_INDEX_COLUMNS",
    "SERIES_COLUMNS",
    "SERIES_METRICS",
    "SNAPSHOT_TIME_COLUMNS",
    "STAGES",
    "SYNERGY_COLUMNS",
    "UNRECORDED",
    "VALUE_COLUMNS",
    "X_AXES",
    "action_mix",
    "best_run_record",
    "calibration",
    "cohort_curves",
    "conversion_rates",
    "count_runs",
    "decision_table",
    "downsample_indices",
    "episode_curves",
    "episode_outcomes",
    "head_entropy",
    "leaderboard",
    "leaderboard_select",
    "lifecycle_totals",
    "list_runs",
    "prune_reasons",
    "read_connection",
    "run_confounders",
    "run_episode_means",
    "run_facets",
    "run_index",
    "run_outcomes",
    "run_series",
    "runs_select",
    "search_events",
    "seed_funnel",
    "seed_lifespans",
    "series_select",
    "shapley_ranking",
    "snapshot_times",
    "synergy",
    "time_in_stage",
    "value_vs_reward",
]
