"""Stored results, unique jobs and periodic schedules.

`jobs.result` holds a completed job's return value. `jobs.unique_key` with `unique_scope` make a duplicate enqueue
a no-op, enforced by two partial unique indexes: one over the jobs still to run (scope 'active': pending or
running), one over every job (scope 'period': the key carries its time window). `jobqueue_schedules` records
the last slot each cron schedule enqueued: the compare-and-set that lets exactly one worker enqueue a slot.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE = "unique_scope = 'active' AND status IN ('pending', 'running')"
PERIOD = "unique_scope = 'period'"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("result", sa.JSON(), nullable=True))
        jobs.add_column(sa.Column("unique_key", sa.String(300), nullable=True))
        jobs.add_column(sa.Column("unique_scope", sa.String(8), nullable=True))
    for name, condition in (("ux_jobs_unique_active", ACTIVE), ("ux_jobs_unique_period", PERIOD)):
        op.create_index(name, "jobs", ["type", "unique_key"], unique=True, sqlite_where=sa.text(condition),
                        postgresql_where=sa.text(condition))
    op.create_table(
        "jobqueue_schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("last_slot", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("jobqueue_schedules")
    op.drop_index("ux_jobs_unique_period", table_name="jobs")
    op.drop_index("ux_jobs_unique_active", table_name="jobs")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("unique_scope")
        jobs.drop_column("unique_key")
        jobs.drop_column("result")
