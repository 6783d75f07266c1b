"""Workflows: runs, the steps' jobs (a run and a step name on the job; `waiting_for` counts the dependencies not
yet completed, `blocked` its status meanwhile) and which step waits for which.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobqueue_workflow_runs",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "jobqueue_workflow_edges",
        sa.Column("from_job_id", sa.BigInteger(), primary_key=True),
        sa.Column("to_job_id", sa.BigInteger(), primary_key=True),
    )
    op.create_index("ix_workflow_edges_to", "jobqueue_workflow_edges", ["to_job_id"])
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("workflow_run_id", sa.BigInteger(), nullable=True))
        jobs.add_column(sa.Column("workflow_step", sa.String(200), nullable=True))
        jobs.add_column(sa.Column("waiting_for", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_workflow_run", "jobs", ["workflow_run_id"],
                    sqlite_where=sa.text("workflow_run_id IS NOT NULL"),
                    postgresql_where=sa.text("workflow_run_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_jobs_workflow_run", "jobs")
    with op.batch_alter_table("jobs") as jobs:
        jobs.drop_column("waiting_for")
        jobs.drop_column("workflow_step")
        jobs.drop_column("workflow_run_id")
    op.drop_index("ix_workflow_edges_to", "jobqueue_workflow_edges")
    op.drop_table("jobqueue_workflow_edges")
    op.drop_table("jobqueue_workflow_runs")
