"""Batches: jobs enqueued together with callback jobs that run once when the last of them has ended
(`jobs.batch_id`); a workflow step that fans out to a batch names its run and its own job.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobqueue_batches",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("callbacks", sa.JSON(), nullable=False),
        sa.Column("workflow_run_id", sa.BigInteger(), nullable=True),
        sa.Column("step_job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("step_job_id"),
    )
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("batch_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_jobs_batch", "jobs", ["batch_id"], sqlite_where=sa.text("batch_id IS NOT NULL"),
                    postgresql_where=sa.text("batch_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_jobs_batch", "jobs")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("batch_id")
    op.drop_table("jobqueue_batches")
