"""SQL building blocks shared by the query layer and the summaries the archive keeps.

Dialect-portable functions (seconds since the epoch, floor, a NULL-ignoring greatest, doubles)
and the definitions that decide what a number means (a trained env, a growth ratio, a seed
stage's rank), written once so that :mod:`sanctum_store.summary` (which stores per-run and
per-seed results) and :mod:`sanctum_store.queries` (which reads them) cannot drift apart. See
the :mod:`sanctum_store.queries` docstring for the definitions in words.
"""

from __future__ import annotations

import sys

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from sanctum_store.models import TABLES

ENVS = TABLES["env_states"]

#: Seed stages in lifecycle order (rank 1..5); the stages of a pruned seed come after.
STAGES = ("GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED")
PRUNED_STAGES = ("PRUNED", "EMBARGOED", "RESETTING")
#: The rank every pruned stage shares.
PRUNED_RANK = len(STAGES) + 1


class epoch_seconds(FunctionElement):
    """Seconds since 1970 of a naive UTC DateTime column, as a double."""

    type = sa.Double()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element, compiler, **kw):
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_pg(element, compiler, **kw):
    return (
        f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"
    )


class floor_int(FunctionElement):
    """floor() as an integer (SQLite's floor() needs a build option, CAST truncates there)."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "floor_int"


@compiles(floor_int, "sqlite")
def _floor_sqlite(element, compiler, **kw):
    x = compiler.process(element.clauses, **kw)
    return f"(CAST({x} AS INTEGER) - (CASE WHEN {x} < CAST({x} AS INTEGER) THEN 1 ELSE 0 END))"


@compiles(floor_int, "postgresql")
def _floor_pg(element, compiler, **kw):
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS BIGINT)"


class mean(FunctionElement):
    """avg() of a double column, as a double, that never fails and never overflows.

    PostgreSQL's avg(double precision) raises "value out of range" past 1e154 (it sums
    squares), sum() past the largest double, and every float operation whose result underflows
    to 0 (5e-324 / 2); SQLite's avg() turns past-the-largest sums into infinity. So the mean is
    taken in two parts that cannot overflow or underflow: values of magnitude 1 and up are
    summed scaled down by 2^-20 (exact: a power of two) and scaled back up after the division,
    within the doubles; smaller values are summed as they are and divided unless the quotient
    rounds to 0 (then it is 0, as in Python: the subnormals keep their mean). Infinities make
    the mean infinite; +inf beside -inf makes it NULL (Python: NaN, which the archive stores as
    NULL).
    """

    type = sa.Double()
    inherit_cache = True
    name = "mean"


#: The scale of the large values' sum (2^-20), its inverse, and the largest double scaled.
_SCALE, _UNSCALE = "9.5367431640625e-07", "1048576.0"
_CAP = repr(sys.float_info.max * 2**-20)


def _mean_sql(x: str, *, number, infinity: str, least: str, greatest: str) -> str:
    infinite = f"(abs({x}) = {infinity})"
    large = f"(abs({x}) >= 1 AND NOT {infinite})"
    n = f"count({x})"
    cap = number(_CAP)
    big = f"sum(CASE WHEN {large} THEN {x} * {number(_SCALE)} END)"
    small = f"sum(CASE WHEN abs({x}) < 1 THEN {x} END)"
    big_mean = f"{least}({greatest}(coalesce({big}, 0) / {n}, -{cap}), {cap}) * {number(_UNSCALE)}"
    # s / n rounds to 0 exactly when |s / n| <= 2^-1075, half the smallest subnormal (a tie
    # rounds to the even 0); n * 5e-324 is exact, and so is 2 * |s|.
    tiny = number("5e-324")
    small_mean = (
        f"(CASE WHEN 2 * abs(coalesce({small}, 0)) > {n} * {tiny} THEN {small} / {n} ELSE 0 END)"
    )
    # Every aggregate in a CASE is computed whichever branch is taken: each of these sums only
    # what it can sum safely.
    return (
        f"(CASE WHEN {n} = 0 THEN NULL "
        f"WHEN count(CASE WHEN {x} = {infinity} THEN 1 END) > 0 "
        f"AND count(CASE WHEN {x} = -{infinity} THEN 1 END) > 0 THEN NULL "
        f"WHEN count(CASE WHEN {infinite} THEN 1 END) > 0 "
        f"THEN sum(CASE WHEN {infinite} THEN {x} END) / {n} "
        f"ELSE {big_mean} + {small_mean} END)"
    )


@compiles(mean, "sqlite")
def _mean_sqlite(element, compiler, **kw):
    return _mean_sql(
        compiler.process(element.clauses, **kw),
        number=lambda v: v,
        infinity="9e999",  # SQLite's spelling of infinity
        least="min",
        greatest="max",
    )


@compiles(mean, "postgresql")
def _mean_pg(element, compiler, **kw):
    return _mean_sql(
        compiler.process(element.clauses, **kw),
        number=lambda v: f"{v}::float8",
        infinity="'Infinity'::float8",
        least="LEAST",
        greatest="GREATEST",
    )


class difference(FunctionElement):
    """``a - b`` of two double columns, as Python computes it: ±inf past the largest double.

    SQLite overflows to infinity by itself; PostgreSQL raises "value out of range". There,
    ``a - b`` overflows exactly when ``a/2 - b/2`` (halving a double of magnitude 1 or more is
    exact) rounds to 2^1023 or beyond, and a value below 1 can never make it overflow (so it
    counts as 0 there: halving a subnormal could underflow, another error).
    """

    type = sa.Double()
    inherit_cache = True
    name = "difference"


@compiles(difference, "sqlite")
def _difference_sqlite(element, compiler, **kw):
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"({a} - {b})"


#: 2^1023: half the first double past the largest.
_HALF_OVERFLOW = "8.98846567431158e307"


@compiles(difference, "postgresql")
def _difference_pg(element, compiler, **kw):
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    inf = "'Infinity'::float8"

    def half(x):
        return f"(CASE WHEN abs({x}) >= 1 THEN {x} * 0.5::float8 ELSE 0::float8 END)"

    halves = f"({half(a)} - {half(b)})"
    return (
        f"(CASE WHEN abs({a}) = {inf} OR abs({b}) = {inf} "
        f"OR (abs({a}) <= 1e300::float8 AND abs({b}) <= 1e300::float8) THEN {a} - {b} "
        f"WHEN {halves} >= {_HALF_OVERFLOW}::float8 THEN {inf} "
        f"WHEN {halves} <= -{_HALF_OVERFLOW}::float8 THEN -{inf} "
        f"ELSE {a} - {b} END)"
    )


def as_double(expr) -> sa.ColumnElement:
    """As a double (PostgreSQL's avg/sum of integers are numeric, i.e. Decimal)."""
    return sa.cast(expr, sa.Double)


def as_bigint(expr) -> sa.ColumnElement:
    return sa.cast(expr, sa.BigInteger)


def greatest(a, b) -> sa.ColumnElement:
    """The larger of two values, ignoring NULL (GREATEST differs between the backends)."""
    return sa.case((sa.or_(b.is_(None), a >= b), a), else_=b)


def flag(condition) -> sa.ColumnElement:
    """1 where ``condition`` holds, else 0."""
    return sa.case((condition, 1), else_=0)


def growth(envs) -> sa.ColumnElement:
    """An env's growth ratio: (host + fossilized params) / host params, 1 without a host."""
    # The sum as numeric: two BIGINTs may overflow on PostgreSQL (SQLite turns to a double).
    total = sa.cast(envs.c.host_params, sa.Numeric) + envs.c.fossilized_params
    return sa.case((envs.c.host_params > 0, as_double(total) / envs.c.host_params), else_=1.0)


def trained(snapshots) -> sa.ColumnElement:
    """The snapshot has an env that has run an epoch (not a batch-end reset)."""
    return sa.exists().where(ENVS.c.snapshot_id == snapshots.c.id, ENVS.c.current_epoch > 0)


def stage_rank(stage) -> sa.ColumnElement:
    """A seed stage's place in the lifecycle: 1..5 (:data:`STAGES`), 6 for every pruned stage,
    NULL for any other stage."""
    return sa.case(
        *((stage == name, i + 1) for i, name in enumerate(STAGES)),
        (stage.in_(PRUNED_STAGES), PRUNED_RANK),
        else_=None,
    )
