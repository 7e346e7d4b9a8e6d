"""What a snapshot says about its run that the archive indexes: labels (task, reward mode,
group) and identities (run, decision and record ids), and the one rule on their size."""

from __future__ import annotations

from sanctum_store import codec
from sanctum_store.errors import SnapshotInvalid

#: Longest text (UTF-8 bytes) the archive takes where it indexes it: a run's identity and
#: labels, captured_at, decision and record ids, event types, action and blueprint names.
#: PostgreSQL cannot index a value much over 2.7 kB; SQLite keeps the same limit, so that an
#: archive means the same on both.
MAX_INDEXED_TEXT = 2000


def check_indexed_text(tree: dict, run_id: str | None = None, group_id: str | None = None) -> None:
    """Refuse, naming the field, a snapshot with text too long to index (before any write)."""
    tamiyo = tree["tamiyo"]
    found: list[tuple[str, str]] = [
        ("run_id", run_id or tree["run_id"]),
        ("captured_at", tree["captured_at"]),
        ("task_name", tree["task_name"]),
        ("tamiyo.group_id" if tamiyo["group_id"] else "group_id", tamiyo["group_id"] or group_id),
        *((f"event_log[{i}].event_type", e["event_type"]) for i, e in enumerate(tree["event_log"])),
        *(
            (f"tamiyo.recent_decisions[{i}].decision_id", d["decision_id"])
            for i, d in enumerate(tamiyo["recent_decisions"])
        ),
        *((f"best_runs[{i}].record_id", b["record_id"]) for i, b in enumerate(tree["best_runs"])),
    ]
    for parent, names in (
        ("tamiyo.", ("action_counts", "cumulative_action_counts")),
        ("", ("cumulative_blueprint_spawns", "cumulative_blueprint_fossilized")),
        ("", ("cumulative_blueprint_prunes",)),
    ):
        node = tamiyo if parent else tree
        for name in names:
            found.extend((f"{parent}{name}[{key!r}]", key) for key in node[name])
    found.append(_reward_mode_source(tree))
    for path, text in found:
        if text and len(text) * 4 > MAX_INDEXED_TEXT:  # cheap test first: 4 bytes a character
            size = len(text.encode("utf-8"))
            if size > MAX_INDEXED_TEXT:
                raise SnapshotInvalid(
                    path,
                    f"text of {size} bytes is too long to index (the archive takes at most "
                    f"{MAX_INDEXED_TEXT} bytes here)",
                )


def _reward_mode_source(tree: dict) -> tuple[str, str | None]:
    """Where :func:`reward_mode_of` finds the run's reward mode, and its value."""
    mode = (tree.get(codec.EXTRA) or {}).get("reward_mode")
    if isinstance(mode, str) and mode:
        return "reward_mode", mode
    for key, env in tree["envs"].items():
        if env["reward_mode"]:
            return f"envs[{key!r}].reward_mode", env["reward_mode"]
    for i, record in enumerate(tree["best_runs"]):
        if record["reward_mode"]:
            return f"best_runs[{i}].reward_mode", record["reward_mode"]
    return "reward_mode", None


def reward_mode_of(tree: dict) -> str | None:
    """The run's reward cohort: esper's top-level reward_mode, else the envs', else best runs'."""
    return _reward_mode_source(tree)[1]
