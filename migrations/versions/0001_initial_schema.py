"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:39:20.452111
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("reward_mode", sa.Text(), nullable=True),
        sa.Column("group_id", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("slot_ids", sa.JSON(), nullable=True),
        sa.Column("max_batches", sa.BigInteger(), nullable=False),
        sa.Column("max_epochs", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.String(length=64), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("snapshot_count", sa.Integer(), nullable=False),
        sa.Column("writer", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("config_seed", sa.BigInteger(), nullable=True),
        sa.Column("config_n_episodes", sa.BigInteger(), nullable=True),
        sa.Column("config_lr", sa.Double(), nullable=True),
        sa.Column("config_clip_ratio", sa.Double(), nullable=True),
        sa.Column("config_entropy_coef", sa.Double(), nullable=True),
        sa.Column("config_param_budget", sa.BigInteger(), nullable=True),
        sa.Column("config_resume_path", sa.Text(), nullable=True),
        sa.Column("config_entropy_anneal", sa.JSON(), nullable=True),
        sa.Column("config_extra", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("run_id", name=op.f("uq_runs_run_id")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_last_seen", ["last_seen"], unique=False)
        batch_op.create_index(
            "ix_runs_reward_mode_group_id", ["reward_mode", "group_id"], unique=False
        )
        batch_op.create_index("ix_runs_task_name", ["task_name"], unique=False)

    op.create_table(
        "best_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=False),
        sa.Column("env_id", sa.BigInteger(), nullable=False),
        sa.Column("episode", sa.BigInteger(), nullable=False),
        sa.Column("peak_accuracy", sa.Double(), nullable=True),
        sa.Column("final_accuracy", sa.Double(), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("growth_ratio", sa.Double(), nullable=True),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("host_loss", sa.Double(), nullable=True),
        sa.Column("host_params", sa.BigInteger(), nullable=False),
        sa.Column("fossilized_count", sa.BigInteger(), nullable=False),
        sa.Column("pruned_count", sa.BigInteger(), nullable=False),
        sa.Column("reward_mode", sa.Text(), nullable=True),
        sa.Column("slot_ids", sa.JSON(), nullable=True),
        sa.Column("action_history", sa.JSON(), nullable=True),
        sa.Column("reward_history", sa.JSON(), nullable=True),
        sa.Column("accuracy_history", sa.JSON(), nullable=True),
        sa.Column("blueprint_spawns", sa.JSON(), nullable=True),
        sa.Column("blueprint_fossilized", sa.JSON(), nullable=True),
        sa.Column("blueprint_prunes", sa.JSON(), nullable=True),
        sa.Column("seeds_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "reward_components_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "counterfactual_matrix_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "shapley_snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_best_runs_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_best_runs")),
        sa.UniqueConstraint("run_pk", "record_key", name=op.f("uq_best_runs_run_pk_record_key")),
    )
    with op.batch_alter_table("best_runs", schema=None) as batch_op:
        batch_op.create_index("ix_best_runs_peak_accuracy", ["peak_accuracy"], unique=False)

    op.create_table(
        "counterfactuals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("compute_time_ms", sa.Double(), nullable=True),
        sa.Column("slot_ids", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_counterfactuals_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counterfactuals")),
        sa.UniqueConstraint("run_pk", "digest", name=op.f("uq_counterfactuals_run_pk_digest")),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("decision_key", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.String(length=64), nullable=False),
        sa.Column("host_accuracy", sa.Double(), nullable=True),
        sa.Column("chosen_action", sa.Text(), nullable=False),
        sa.Column("chosen_slot", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("expected_value", sa.Double(), nullable=True),
        sa.Column("actual_reward", sa.Double(), nullable=True),
        sa.Column("decision_id", sa.Text(), nullable=False),
        sa.Column("env_id", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("value_residual", sa.Double(), nullable=True),
        sa.Column("td_advantage", sa.Double(), nullable=True),
        sa.Column("decision_entropy", sa.Double(), nullable=True),
        sa.Column("chosen_blueprint", sa.Text(), nullable=True),
        sa.Column("chosen_tempo", sa.Text(), nullable=True),
        sa.Column("chosen_style", sa.Text(), nullable=True),
        sa.Column("chosen_curve", sa.Text(), nullable=True),
        sa.Column("chosen_alpha_target", sa.Text(), nullable=True),
        sa.Column("chosen_alpha_speed", sa.Text(), nullable=True),
        sa.Column("op_confidence", sa.Double(), nullable=True),
        sa.Column("slot_confidence", sa.Double(), nullable=True),
        sa.Column("blueprint_confidence", sa.Double(), nullable=True),
        sa.Column("style_confidence", sa.Double(), nullable=True),
        sa.Column("tempo_confidence", sa.Double(), nullable=True),
        sa.Column("alpha_target_confidence", sa.Double(), nullable=True),
        sa.Column("alpha_speed_confidence", sa.Double(), nullable=True),
        sa.Column("curve_confidence", sa.Double(), nullable=True),
        sa.Column("op_entropy", sa.Double(), nullable=True),
        sa.Column("slot_entropy", sa.Double(), nullable=True),
        sa.Column("blueprint_entropy", sa.Double(), nullable=True),
        sa.Column("style_entropy", sa.Double(), nullable=True),
        sa.Column("tempo_entropy", sa.Double(), nullable=True),
        sa.Column("alpha_target_entropy", sa.Double(), nullable=True),
        sa.Column("alpha_speed_entropy", sa.Double(), nullable=True),
        sa.Column("curve_entropy", sa.Double(), nullable=True),
        sa.Column("slot_states", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_decisions_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint(
            "run_pk", "decision_key", name=op.f("uq_decisions_run_pk_decision_key")
        ),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_run_pk_batch", ["run_pk", "batch"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("env_id", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("episode", sa.BigInteger(), nullable=False),
        sa.Column("relative_time", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_events_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("run_pk", "seq", name=op.f("uq_events_run_pk_seq")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_run_pk_event_type", ["run_pk", "event_type"], unique=False)

    op.create_table(
        "reward_components",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Double(), nullable=True),
        sa.Column("base_acc_delta", sa.Double(), nullable=True),
        sa.Column("bounded_attribution", sa.Double(), nullable=True),
        sa.Column("seed_contribution", sa.Double(), nullable=True),
        sa.Column("compute_rent", sa.Double(), nullable=True),
        sa.Column("alpha_shock", sa.Double(), nullable=True),
        sa.Column("ratio_penalty", sa.Double(), nullable=True),
        sa.Column("stage_bonus", sa.Double(), nullable=True),
        sa.Column("fossilize_terminal_bonus", sa.Double(), nullable=True),
        sa.Column("blending_warning", sa.Double(), nullable=True),
        sa.Column("holding_warning", sa.Double(), nullable=True),
        sa.Column("hindsight_credit", sa.Double(), nullable=True),
        sa.Column("scaffold_count", sa.BigInteger(), nullable=False),
        sa.Column("avg_scaffold_delay", sa.Double(), nullable=True),
        sa.Column("env_id", sa.BigInteger(), nullable=False),
        sa.Column("val_acc", sa.Double(), nullable=True),
        sa.Column("last_action", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["runs.id"],
            name=op.f("fk_reward_components_run_pk_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_components")),
        sa.UniqueConstraint("run_pk", "digest", name=op.f("uq_reward_components_run_pk_digest")),
    )
    op.create_table(
        "run_configs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("n_episodes", sa.BigInteger(), nullable=False),
        sa.Column("lr", sa.Double(), nullable=True),
        sa.Column("clip_ratio", sa.Double(), nullable=True),
        sa.Column("entropy_coef", sa.Double(), nullable=True),
        sa.Column("param_budget", sa.BigInteger(), nullable=False),
        sa.Column("resume_path", sa.Text(), nullable=False),
        sa.Column("entropy_anneal", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_run_configs_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_configs")),
        sa.UniqueConstraint("run_pk", "digest", name=op.f("uq_run_configs_run_pk_digest")),
    )
    op.create_table(
        "seed_sets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_seed_sets_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seed_sets")),
        sa.UniqueConstraint("run_pk", "digest", name=op.f("uq_seed_sets_run_pk_digest")),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_series_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("run_pk", "name", name=op.f("uq_series_run_pk_name")),
    )
    op.create_table(
        "shapley_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.String(length=64), nullable=True),
        sa.Column("slot_ids", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["runs.id"],
            name=op.f("fk_shapley_snapshots_run_pk_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shapley_snapshots")),
        sa.UniqueConstraint("run_pk", "digest", name=op.f("uq_shapley_snapshots_run_pk_digest")),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("captured_ts", sa.DateTime(), nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=True),
        sa.Column("event_log_start", sa.BigInteger(), nullable=True),
        sa.Column("event_log_len", sa.Integer(), nullable=False),
        sa.Column("event_overrides", sa.JSON(), nullable=True),
        sa.Column("current_episode", sa.BigInteger(), nullable=False),
        sa.Column("current_batch", sa.BigInteger(), nullable=False),
        sa.Column("max_batches", sa.BigInteger(), nullable=False),
        sa.Column("current_epoch", sa.BigInteger(), nullable=False),
        sa.Column("max_epochs", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("start_time", sa.String(length=64), nullable=True),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("runtime_seconds", sa.Double(), nullable=True),
        sa.Column("staleness_seconds", sa.Double(), nullable=True),
        sa.Column("captured_at", sa.Text(), nullable=False),
        sa.Column("total_events_received", sa.BigInteger(), nullable=False),
        sa.Column("poll_count", sa.BigInteger(), nullable=False),
        sa.Column("training_thread_alive", sa.Boolean(), nullable=True),
        sa.Column("aggregate_mean_accuracy", sa.Double(), nullable=True),
        sa.Column("aggregate_mean_reward", sa.Double(), nullable=True),
        sa.Column("batch_avg_reward", sa.Double(), nullable=True),
        sa.Column("batch_total_episodes", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_germinated", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_fossilized", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_pruned", sa.BigInteger(), nullable=False),
        sa.Column("total_slots", sa.BigInteger(), nullable=False),
        sa.Column("active_slots", sa.BigInteger(), nullable=False),
        sa.Column("avg_epochs_in_stage", sa.Double(), nullable=True),
        sa.Column("last_ppo_update", sa.String(length=64), nullable=True),
        sa.Column("last_reward_update", sa.String(length=64), nullable=True),
        sa.Column("focused_env_id", sa.BigInteger(), nullable=False),
        sa.Column("last_action_env_id", sa.BigInteger(), nullable=True),
        sa.Column("last_action_timestamp", sa.String(length=64), nullable=True),
        sa.Column("slot_ids", sa.JSON(), nullable=True),
        sa.Column("slot_stage_counts", sa.JSON(), nullable=True),
        sa.Column(
            "rewards_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "run_config_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "mean_accuracy_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "mean_accuracy_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("mean_accuracy_history_len", sa.Integer(), nullable=True),
        sa.Column("vitals_gpu_memory_used_gb", sa.Double(), nullable=True),
        sa.Column("vitals_gpu_memory_total_gb", sa.Double(), nullable=True),
        sa.Column("vitals_gpu_utilization", sa.Double(), nullable=True),
        sa.Column("vitals_gpu_temperature", sa.Double(), nullable=True),
        sa.Column("vitals_cpu_percent", sa.Double(), nullable=True),
        sa.Column("vitals_ram_used_gb", sa.Double(), nullable=True),
        sa.Column("vitals_ram_total_gb", sa.Double(), nullable=True),
        sa.Column("vitals_epochs_per_second", sa.Double(), nullable=True),
        sa.Column("vitals_batches_per_hour", sa.Double(), nullable=True),
        sa.Column("vitals_host_params", sa.BigInteger(), nullable=False),
        sa.Column("vitals_extra", sa.JSON(), nullable=True),
        sa.Column("seed_lifecycle_germination_count", sa.BigInteger(), nullable=False),
        sa.Column("seed_lifecycle_prune_count", sa.BigInteger(), nullable=False),
        sa.Column("seed_lifecycle_fossilize_count", sa.BigInteger(), nullable=False),
        sa.Column("seed_lifecycle_active_count", sa.BigInteger(), nullable=False),
        sa.Column("seed_lifecycle_total_slots", sa.BigInteger(), nullable=False),
        sa.Column("seed_lifecycle_germination_rate", sa.Double(), nullable=True),
        sa.Column("seed_lifecycle_prune_rate", sa.Double(), nullable=True),
        sa.Column("seed_lifecycle_fossilize_rate", sa.Double(), nullable=True),
        sa.Column("seed_lifecycle_blend_success_rate", sa.Double(), nullable=True),
        sa.Column("seed_lifecycle_avg_lifespan_epochs", sa.Double(), nullable=True),
        sa.Column("seed_lifecycle_germination_trend", sa.Text(), nullable=False),
        sa.Column("seed_lifecycle_prune_trend", sa.Text(), nullable=False),
        sa.Column("seed_lifecycle_fossilize_trend", sa.Text(), nullable=False),
        sa.Column("seed_lifecycle_extra", sa.JSON(), nullable=True),
        sa.Column("observation_stats_slot_features_mean", sa.Double(), nullable=True),
        sa.Column("observation_stats_slot_features_std", sa.Double(), nullable=True),
        sa.Column("observation_stats_host_features_mean", sa.Double(), nullable=True),
        sa.Column("observation_stats_host_features_std", sa.Double(), nullable=True),
        sa.Column("observation_stats_context_features_mean", sa.Double(), nullable=True),
        sa.Column("observation_stats_context_features_std", sa.Double(), nullable=True),
        sa.Column("observation_stats_outlier_pct", sa.Double(), nullable=True),
        sa.Column("observation_stats_nan_count", sa.BigInteger(), nullable=False),
        sa.Column("observation_stats_inf_count", sa.BigInteger(), nullable=False),
        sa.Column("observation_stats_normalization_drift", sa.Double(), nullable=True),
        sa.Column("observation_stats_extra", sa.JSON(), nullable=True),
        sa.Column("episode_stats_length_mean", sa.Double(), nullable=True),
        sa.Column("episode_stats_length_std", sa.Double(), nullable=True),
        sa.Column("episode_stats_length_min", sa.BigInteger(), nullable=False),
        sa.Column("episode_stats_length_max", sa.BigInteger(), nullable=False),
        sa.Column("episode_stats_total_episodes", sa.BigInteger(), nullable=False),
        sa.Column("episode_stats_timeout_count", sa.BigInteger(), nullable=False),
        sa.Column("episode_stats_success_count", sa.BigInteger(), nullable=False),
        sa.Column("episode_stats_early_termination_count", sa.BigInteger(), nullable=False),
        sa.Column("episode_stats_timeout_rate", sa.Double(), nullable=True),
        sa.Column("episode_stats_success_rate", sa.Double(), nullable=True),
        sa.Column("episode_stats_early_termination_rate", sa.Double(), nullable=True),
        sa.Column("episode_stats_steps_per_germinate", sa.Double(), nullable=True),
        sa.Column("episode_stats_steps_per_prune", sa.Double(), nullable=True),
        sa.Column("episode_stats_steps_per_fossilize", sa.Double(), nullable=True),
        sa.Column("episode_stats_completion_trend", sa.Text(), nullable=False),
        sa.Column("episode_stats_extra", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_snapshots_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_snapshots_run_pk_captured_ts", ["run_pk", "captured_ts"], unique=False
        )
        batch_op.create_index(
            "ix_snapshots_run_pk_current_batch",
            ["run_pk", "current_batch", "current_epoch"],
            unique=False,
        )
        batch_op.create_index("uq_snapshots_run_pk_dedup_key", ["run_pk", "dedup_key"], unique=True)

    op.create_table(
        "action_counts",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_action_counts_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "scope", "action", name=op.f("pk_action_counts")),
    )
    op.create_table(
        "blueprint_counts",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("blueprint_id", sa.Text(), nullable=False),
        sa.Column("spawns", sa.BigInteger(), nullable=True),
        sa.Column("fossilized", sa.BigInteger(), nullable=True),
        sa.Column("prunes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_blueprint_counts_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "blueprint_id", name=op.f("pk_blueprint_counts")),
    )
    op.create_table(
        "counterfactual_configs",
        sa.Column(
            "counterfactual_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("seed_mask", sa.Text(), nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["counterfactual_id"],
            ["counterfactuals.id"],
            name=op.f("fk_counterfactual_configs_counterfactual_id_counterfactuals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "counterfactual_id", "position", name=op.f("pk_counterfactual_configs")
        ),
    )
    op.create_table(
        "decision_alternatives",
        sa.Column(
            "decision_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("probability", sa.Double(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_pk"],
            ["decisions.id"],
            name=op.f("fk_decision_alternatives_decision_pk_decisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("decision_pk", "position", name=op.f("pk_decision_alternatives")),
    )
    op.create_table(
        "env_states",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("env_key", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("env_id", sa.BigInteger(), nullable=False),
        sa.Column("current_epoch", sa.BigInteger(), nullable=False),
        sa.Column("host_accuracy", sa.Double(), nullable=True),
        sa.Column("host_loss", sa.Double(), nullable=True),
        sa.Column("host_params", sa.BigInteger(), nullable=False),
        sa.Column("active_seed_count", sa.BigInteger(), nullable=False),
        sa.Column("fossilized_count", sa.BigInteger(), nullable=False),
        sa.Column("pruned_count", sa.BigInteger(), nullable=False),
        sa.Column("fossilized_params", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_reward", sa.Double(), nullable=True),
        sa.Column("best_reward", sa.Double(), nullable=True),
        sa.Column("best_reward_epoch", sa.BigInteger(), nullable=False),
        sa.Column("best_accuracy", sa.Double(), nullable=True),
        sa.Column("best_accuracy_epoch", sa.BigInteger(), nullable=False),
        sa.Column("best_accuracy_episode", sa.BigInteger(), nullable=False),
        sa.Column("total_actions", sa.BigInteger(), nullable=False),
        sa.Column("gaming_trigger_count", sa.BigInteger(), nullable=False),
        sa.Column("total_reward_steps", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("last_update", sa.String(length=64), nullable=True),
        sa.Column("epochs_since_improvement", sa.BigInteger(), nullable=False),
        sa.Column("stall_counter", sa.BigInteger(), nullable=False),
        sa.Column("degraded_counter", sa.BigInteger(), nullable=False),
        sa.Column("reward_mode", sa.Text(), nullable=True),
        sa.Column("rolled_back", sa.Boolean(), nullable=False),
        sa.Column("rollback_reason", sa.Text(), nullable=False),
        sa.Column("rollback_timestamp", sa.String(length=64), nullable=True),
        sa.Column("blueprint_spawns", sa.JSON(), nullable=True),
        sa.Column("blueprint_prunes", sa.JSON(), nullable=True),
        sa.Column("blueprint_fossilized", sa.JSON(), nullable=True),
        sa.Column("action_counts", sa.JSON(), nullable=True),
        sa.Column("seeds_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "best_seeds_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "reward_components_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "best_reward_components_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "counterfactual_matrix_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "best_counterfactual_matrix_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "shapley_snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "best_shapley_snapshot_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "reward_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "reward_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("reward_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "accuracy_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "accuracy_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("accuracy_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "action_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "action_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("action_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "best_action_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "best_action_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("best_action_history_len", sa.Integer(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_env_states_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_env_states_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_env_states")),
        sa.UniqueConstraint(
            "snapshot_id", "env_key", name=op.f("uq_env_states_snapshot_id_env_key")
        ),
    )
    with op.batch_alter_table("env_states", schema=None) as batch_op:
        batch_op.create_index("ix_env_states_run_pk_env_key", ["run_pk", "env_key"], unique=False)

    op.create_table(
        "gpu_stats",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("device_key", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.BigInteger(), nullable=False),
        sa.Column("memory_used_gb", sa.Double(), nullable=True),
        sa.Column("memory_total_gb", sa.Double(), nullable=True),
        sa.Column("utilization", sa.Double(), nullable=True),
        sa.Column("temperature", sa.Double(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_gpu_stats_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "device_key", name=op.f("pk_gpu_stats")),
    )
    op.create_table(
        "seed_states",
        sa.Column(
            "seed_set_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("slot_key", sa.Text(), nullable=False),
        sa.Column("slot_id", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("blueprint_id", sa.Text(), nullable=True),
        sa.Column("alpha", sa.Double(), nullable=True),
        sa.Column("accuracy_delta", sa.Double(), nullable=True),
        sa.Column("seed_params", sa.BigInteger(), nullable=False),
        sa.Column("grad_ratio", sa.Double(), nullable=True),
        sa.Column("has_vanishing", sa.Boolean(), nullable=False),
        sa.Column("has_exploding", sa.Boolean(), nullable=False),
        sa.Column("epochs_in_stage", sa.BigInteger(), nullable=False),
        sa.Column("improvement", sa.Double(), nullable=True),
        sa.Column("prune_reason", sa.Text(), nullable=False),
        sa.Column("auto_pruned", sa.Boolean(), nullable=False),
        sa.Column("epochs_total", sa.BigInteger(), nullable=False),
        sa.Column("counterfactual", sa.Double(), nullable=True),
        sa.Column("blend_tempo_epochs", sa.BigInteger(), nullable=False),
        sa.Column("alpha_curve", sa.Text(), nullable=False),
        sa.Column("contribution_velocity", sa.Double(), nullable=True),
        sa.Column("interaction_sum", sa.Double(), nullable=True),
        sa.Column("boost_received", sa.Double(), nullable=True),
        sa.Column("upstream_alpha_sum", sa.Double(), nullable=True),
        sa.Column("downstream_alpha_sum", sa.Double(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["seed_set_id"],
            ["seed_sets.id"],
            name=op.f("fk_seed_states_seed_set_id_seed_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seed_set_id", "position", name=op.f("pk_seed_states")),
    )
    op.create_table(
        "series_points",
        sa.Column(
            "series_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("num", sa.Double(), nullable=True),
        sa.Column("txt", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_series_points_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("series_id", "seq", name=op.f("pk_series_points")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "shapley_estimates",
        sa.Column(
            "shapley_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Text(), nullable=False),
        sa.Column("mean", sa.Double(), nullable=True),
        sa.Column("std", sa.Double(), nullable=True),
        sa.Column("n_samples", sa.BigInteger(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["shapley_id"],
            ["shapley_snapshots.id"],
            name=op.f("fk_shapley_estimates_shapley_id_shapley_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shapley_id", "position", name=op.f("pk_shapley_estimates")),
    )
    op.create_table(
        "snapshot_best_runs",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "best_run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("overlay", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["best_run_pk"],
            ["best_runs.id"],
            name=op.f("fk_snapshot_best_runs_best_run_pk_best_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_best_runs_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "position", name=op.f("pk_snapshot_best_runs")),
    )
    with op.batch_alter_table("snapshot_best_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_snapshot_best_runs_best_run_pk"), ["best_run_pk"], unique=False
        )

    op.create_table(
        "snapshot_decisions",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "decision_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("overlay", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_pk"],
            ["decisions.id"],
            name=op.f("fk_snapshot_decisions_decision_pk_decisions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_decisions_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "position", name=op.f("pk_snapshot_decisions")),
    )
    with op.batch_alter_table("snapshot_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_snapshot_decisions_decision_pk"), ["decision_pk"], unique=False
        )

    op.create_table(
        "tamiyo_states",
        sa.Column(
            "snapshot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("entropy", sa.Double(), nullable=True),
        sa.Column("clip_fraction", sa.Double(), nullable=True),
        sa.Column("kl_divergence", sa.Double(), nullable=True),
        sa.Column("explained_variance", sa.Double(), nullable=True),
        sa.Column("policy_loss", sa.Double(), nullable=True),
        sa.Column("value_loss", sa.Double(), nullable=True),
        sa.Column("entropy_loss", sa.Double(), nullable=True),
        sa.Column("grad_norm", sa.Double(), nullable=True),
        sa.Column("learning_rate", sa.Double(), nullable=True),
        sa.Column("entropy_coef", sa.Double(), nullable=True),
        sa.Column("ratio_mean", sa.Double(), nullable=True),
        sa.Column("ratio_min", sa.Double(), nullable=True),
        sa.Column("ratio_max", sa.Double(), nullable=True),
        sa.Column("ratio_std", sa.Double(), nullable=True),
        sa.Column("advantage_mean", sa.Double(), nullable=True),
        sa.Column("advantage_std", sa.Double(), nullable=True),
        sa.Column("advantage_skewness", sa.Double(), nullable=True),
        sa.Column("advantage_kurtosis", sa.Double(), nullable=True),
        sa.Column("advantage_min", sa.Double(), nullable=True),
        sa.Column("advantage_max", sa.Double(), nullable=True),
        sa.Column("advantage_raw_mean", sa.Double(), nullable=True),
        sa.Column("advantage_raw_std", sa.Double(), nullable=True),
        sa.Column("advantage_positive_ratio", sa.Double(), nullable=True),
        sa.Column("log_prob_min", sa.Double(), nullable=True),
        sa.Column("log_prob_max", sa.Double(), nullable=True),
        sa.Column("dead_layers", sa.BigInteger(), nullable=False),
        sa.Column("exploding_layers", sa.BigInteger(), nullable=False),
        sa.Column("nan_grad_count", sa.BigInteger(), nullable=False),
        sa.Column("inf_grad_count", sa.BigInteger(), nullable=False),
        sa.Column("entropy_collapsed", sa.Boolean(), nullable=False),
        sa.Column("update_time_ms", sa.Double(), nullable=True),
        sa.Column("early_stop_epoch", sa.BigInteger(), nullable=True),
        sa.Column("head_slot_entropy", sa.Double(), nullable=True),
        sa.Column("head_blueprint_entropy", sa.Double(), nullable=True),
        sa.Column("head_style_entropy", sa.Double(), nullable=True),
        sa.Column("head_tempo_entropy", sa.Double(), nullable=True),
        sa.Column("head_alpha_target_entropy", sa.Double(), nullable=True),
        sa.Column("head_alpha_speed_entropy", sa.Double(), nullable=True),
        sa.Column("head_alpha_curve_entropy", sa.Double(), nullable=True),
        sa.Column("head_op_entropy", sa.Double(), nullable=True),
        sa.Column("head_slot_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_blueprint_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_style_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_tempo_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_alpha_target_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_alpha_speed_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_alpha_curve_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_op_grad_norm", sa.Double(), nullable=True),
        sa.Column("head_slot_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_blueprint_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_style_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_tempo_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_alpha_target_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_alpha_speed_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_alpha_curve_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_op_grad_norm_prev", sa.Double(), nullable=True),
        sa.Column("head_slot_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_blueprint_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_style_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_tempo_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_alpha_target_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_alpha_speed_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_alpha_curve_ratio_max", sa.Double(), nullable=True),
        sa.Column("head_op_ratio_max", sa.Double(), nullable=True),
        sa.Column("joint_ratio_max", sa.Double(), nullable=True),
        sa.Column("current_episode_return", sa.Double(), nullable=True),
        sa.Column("current_episode", sa.BigInteger(), nullable=False),
        sa.Column("inner_epoch", sa.BigInteger(), nullable=False),
        sa.Column("ppo_batch", sa.BigInteger(), nullable=False),
        sa.Column("total_actions", sa.BigInteger(), nullable=False),
        sa.Column("cumulative_total_actions", sa.BigInteger(), nullable=False),
        sa.Column("ppo_data_received", sa.Boolean(), nullable=False),
        sa.Column("group_id", sa.Text(), nullable=True),
        sa.Column("entropy_velocity", sa.Double(), nullable=True),
        sa.Column("collapse_risk_score", sa.Double(), nullable=True),
        sa.Column("entropy_clip_correlation", sa.Double(), nullable=True),
        sa.Column("value_mean", sa.Double(), nullable=True),
        sa.Column("value_std", sa.Double(), nullable=True),
        sa.Column("value_min", sa.Double(), nullable=True),
        sa.Column("value_max", sa.Double(), nullable=True),
        sa.Column("initial_value_spread", sa.Double(), nullable=True),
        sa.Column("q_germinate", sa.Double(), nullable=True),
        sa.Column("q_advance", sa.Double(), nullable=True),
        sa.Column("q_fossilize", sa.Double(), nullable=True),
        sa.Column("q_prune", sa.Double(), nullable=True),
        sa.Column("q_wait", sa.Double(), nullable=True),
        sa.Column("q_set_alpha", sa.Double(), nullable=True),
        sa.Column("q_variance", sa.Double(), nullable=True),
        sa.Column("q_spread", sa.Double(), nullable=True),
        sa.Column("last_action_success", sa.Boolean(), nullable=False),
        sa.Column("last_action_op", sa.Text(), nullable=False),
        sa.Column("head_nan_latch", sa.JSON(), nullable=True),
        sa.Column("head_inf_latch", sa.JSON(), nullable=True),
        sa.Column("layer_gradient_health", sa.JSON(), nullable=True),
        sa.Column(
            "episode_return_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "episode_return_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("episode_return_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "policy_loss_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "policy_loss_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("policy_loss_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "value_loss_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "value_loss_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("value_loss_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "grad_norm_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "grad_norm_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("grad_norm_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "entropy_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "entropy_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("entropy_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "explained_variance_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "explained_variance_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("explained_variance_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "kl_divergence_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "kl_divergence_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("kl_divergence_history_len", sa.Integer(), nullable=True),
        sa.Column(
            "clip_fraction_history_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "clip_fraction_history_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("clip_fraction_history_len", sa.Integer(), nullable=True),
        sa.Column("infrastructure_cuda_memory_allocated_gb", sa.Double(), nullable=True),
        sa.Column("infrastructure_cuda_memory_reserved_gb", sa.Double(), nullable=True),
        sa.Column("infrastructure_cuda_memory_peak_gb", sa.Double(), nullable=True),
        sa.Column("infrastructure_cuda_memory_fragmentation", sa.Double(), nullable=True),
        sa.Column("infrastructure_compile_enabled", sa.Boolean(), nullable=False),
        sa.Column("infrastructure_compile_backend", sa.Text(), nullable=False),
        sa.Column("infrastructure_compile_mode", sa.Text(), nullable=False),
        sa.Column("infrastructure_extra", sa.JSON(), nullable=True),
        sa.Column("gradient_quality_gradient_cv", sa.Double(), nullable=True),
        sa.Column("gradient_quality_clip_fraction_positive", sa.Double(), nullable=True),
        sa.Column("gradient_quality_clip_fraction_negative", sa.Double(), nullable=True),
        sa.Column("gradient_quality_extra", sa.JSON(), nullable=True),
        sa.Column("value_function_v_return_correlation", sa.Double(), nullable=True),
        sa.Column("value_function_td_error_mean", sa.Double(), nullable=True),
        sa.Column("value_function_td_error_std", sa.Double(), nullable=True),
        sa.Column("value_function_bellman_error", sa.Double(), nullable=True),
        sa.Column("value_function_return_p10", sa.Double(), nullable=True),
        sa.Column("value_function_return_p50", sa.Double(), nullable=True),
        sa.Column("value_function_return_p90", sa.Double(), nullable=True),
        sa.Column("value_function_return_skewness", sa.Double(), nullable=True),
        sa.Column("value_function_return_variance", sa.Double(), nullable=True),
        sa.Column(
            "value_function_value_predictions_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "value_function_value_predictions_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("value_function_value_predictions_len", sa.Integer(), nullable=True),
        sa.Column(
            "value_function_actual_returns_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "value_function_actual_returns_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("value_function_actual_returns_len", sa.Integer(), nullable=True),
        sa.Column(
            "value_function_td_errors_sid",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "value_function_td_errors_start",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("value_function_td_errors_len", sa.Integer(), nullable=True),
        sa.Column("value_function_extra", sa.JSON(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("float_marks", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_tamiyo_states_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", name=op.f("pk_tamiyo_states")),
    )


def downgrade() -> None:
    op.drop_table("tamiyo_states")
    with op.batch_alter_table("snapshot_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshot_decisions_decision_pk"))

    op.drop_table("snapshot_decisions")
    with op.batch_alter_table("snapshot_best_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshot_best_runs_best_run_pk"))

    op.drop_table("snapshot_best_runs")
    op.drop_table("shapley_estimates")
    op.drop_table("series_points")
    op.drop_table("seed_states")
    op.drop_table("gpu_stats")
    with op.batch_alter_table("env_states", schema=None) as batch_op:
        batch_op.drop_index("ix_env_states_run_pk_env_key")

    op.drop_table("env_states")
    op.drop_table("decision_alternatives")
    op.drop_table("counterfactual_configs")
    op.drop_table("blueprint_counts")
    op.drop_table("action_counts")
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_index("uq_snapshots_run_pk_dedup_key")
        batch_op.drop_index("ix_snapshots_run_pk_current_batch")
        batch_op.drop_index("ix_snapshots_run_pk_captured_ts")

    op.drop_table("snapshots")
    op.drop_table("shapley_snapshots")
    op.drop_table("series")
    op.drop_table("seed_sets")
    op.drop_table("run_configs")
    op.drop_table("reward_components")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_run_pk_event_type")

    op.drop_table("events")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_run_pk_batch")

    op.drop_table("decisions")
    op.drop_table("counterfactuals")
    with op.batch_alter_table("best_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_best_runs_peak_accuracy")

    op.drop_table("best_runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_task_name")
        batch_op.drop_index("ix_runs_reward_mode_group_id")
        batch_op.drop_index("ix_runs_last_seen")

    op.drop_table("runs")
