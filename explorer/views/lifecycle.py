"""Lifecycle: how far seeds got, per blueprint and cohort; how long they lived; why pruned."""

import charts
import data
import streamlit as st
import tables

from sanctum_store.queries import COHORT_ATTRIBUTES

STAGE_ORDER = ["germinated", "training", "blending", "holding", "fossilized", "pruned"]

st.title("Seed lifecycle")
left, middle, right = st.columns(3)
scope = data.scope_picker(left, "life_scope")
split = middle.selectbox("Split by cohort", ["(none)", *COHORT_ATTRIBUTES], key="life_cohort")
cohort = None if split == "(none)" else split
by = right.radio("Per", ["blueprint", "slot"], horizontal=True, key="life_by")
key = "blueprint_id" if by == "blueprint" else "slot_key"

funnel = data.seed_funnel(by=by, cohort=cohort, **scope)
if funnel.empty:
    st.info("No seeds recorded yet.")
    st.stop()
label = charts.labels(funnel[key]) + (" · " + charts.labels(funnel["cohort"]) if cohort else "")
long = funnel.assign(label=label).melt(
    id_vars=["label"], value_vars=STAGE_ORDER, var_name="stage", value_name="seeds"
)
long["stage"] = long["stage"].str.upper()
# One bar per stage: each counts the seeds that reached that stage, so bars are never summed.
st.altair_chart(
    charts.grouped_bars(
        long,
        category="label",
        group="stage",
        value="seeds",
        colors={s.upper(): charts.STAGE_COLORS[s.upper()] for s in STAGE_ORDER},
        title="Seeds reaching each stage (each seed once per stage)",
        category_title=by + (f" · {split.replace('_', ' ')}" if cohort else ""),
    ),
    width="stretch",
)
# The seeds seen only: esper's counters and rates are in the tables below.
seen = [c for c in funnel.columns if c != "blend_success_rate" and not c.startswith("reported_")]
tables.show(funnel[seen], key="life_funnel")

st.subheader("Seeds per blueprint, as esper counted them")
totals = data.lifecycle_totals(cohort=cohort, **scope)
st.text(
    f"{int(totals['seen'].sum())} of {int(totals['spawns'].sum())} seeds were seen by "
    "snapshots; esper's counters (spawns, fossilized, prunes) count every seed, the seen_* "
    "columns only those snapshots saw."
)
tables.show(
    totals,
    key="life_totals",
    column_config={
        "blend_success_rate": st.column_config.ProgressColumn(
            "blend success", min_value=0.0, max_value=1.0, format="%.2f"
        )
    },
)
rates = data.conversion_rates(cohort=cohort, **scope)
st.text(
    "Conversion rates from esper's counters, one rate per run; mean over runs with a 95 % "
    "t-interval across runs (none with a single run)."
)
tables.show(rates, key="life_rates")

left, right = st.columns(2)
lifespans = data.seed_lifespans(cohort=cohort, **scope)
if not lifespans.empty:
    expanded = lifespans.loc[lifespans.index.repeat(lifespans["n"].clip(upper=500))]
    left.altair_chart(
        charts.histogram(
            expanded.head(charts.MAX_POINTS),
            value="epochs_total",
            color="outcome",
            title="Lifespan of seeds that ended",
            colors={
                "fossilized": charts.STAGE_COLORS["FOSSILIZED"],
                "pruned": charts.STAGE_COLORS["PRUNED"],
            },
        ),
        width="stretch",
    )
stages = data.time_in_stage(by=None, cohort=cohort, **scope)
if not stages.empty:
    right.altair_chart(
        charts.ranking(
            stages.assign(
                stage=stages["stage"] + (" · " + charts.labels(stages["cohort"]) if cohort else "")
            ),
            label="stage",
            value="mean_epochs",
            title="Mean epochs in each stage",
            label_title="stage" + (f" · {split.replace('_', ' ')}" if cohort else ""),
        ),
        width="stretch",
    )

st.subheader("Prune reasons")
reasons = data.prune_reasons(cohort=cohort, **scope)
reasons = reasons.assign(
    kind=reasons["auto_pruned"].map({True: "auto", False: "policy"}).fillna("unknown")
)
st.text(
    f"{int(reasons['n'].sum())} prunes by esper's counter; 'unrecorded': pruned without a "
    "snapshot seeing the reason."
)
tables.show(reasons, key="life_reasons")
