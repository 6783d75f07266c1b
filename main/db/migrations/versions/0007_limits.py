"""Concurrency and rate limits, enforced inside the claim: each job carries its keys and limits; two partial
indexes count what the claim asks about (running jobs per concurrency key, starts per rate key); on PostgreSQL
two functions count them under a per-key lock with a snapshot of their own (see main/db/dialects/postgres.py).
And `jobs.result_awaited`: a job whose end someone awaits (queue.result()), so that only its end is announced.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE OR REPLACE FUNCTION jobqueue_running_free(key text, most integer, claiming bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1785686641, hashtext(key)) THEN
        RETURN 0;
    END IF;
    RETURN most - (SELECT count(*) FROM jobs WHERE status = 'running' AND concurrency_key = key
                   AND id <> ALL (claiming));
END $$;
CREATE OR REPLACE FUNCTION jobqueue_starts_free(key text, most integer, since timestamp, claiming bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1785686642, hashtext(key)) THEN
        RETURN 0;
    END IF;
    RETURN most - (SELECT count(*) FROM jobs WHERE rate_key = key AND started_at > since AND id <> ALL (claiming));
END $$;
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("concurrency_key", sa.String(300), nullable=True))
        jobs.add_column(sa.Column("concurrency_limit", sa.Integer(), nullable=True))
        jobs.add_column(sa.Column("rate_key", sa.String(300), nullable=True))
        jobs.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        jobs.add_column(sa.Column("rate_window", sa.Float(), nullable=True))
        jobs.add_column(sa.Column("result_awaited", sa.Boolean(), nullable=True))
    running = "status = 'running' AND concurrency_key IS NOT NULL"
    op.create_index("ix_jobs_running_concurrency", "jobs", ["concurrency_key"], sqlite_where=sa.text(running),
                    postgresql_where=sa.text(running))
    op.create_index("ix_jobs_rate_started", "jobs", ["rate_key", "started_at"],
                    sqlite_where=sa.text("rate_key IS NOT NULL"), postgresql_where=sa.text("rate_key IS NOT NULL"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION jobqueue_starts_free(text, integer, timestamp, bigint[])")
        op.execute("DROP FUNCTION jobqueue_running_free(text, integer, bigint[])")
    op.drop_index("ix_jobs_rate_started", table_name="jobs")
    op.drop_index("ix_jobs_running_concurrency", table_name="jobs")
    with op.batch_alter_table("jobs") as jobs:
        for column in ("result_awaited", "rate_window", "rate_limit", "rate_key", "concurrency_limit",
                       "concurrency_key"):
            jobs.drop_column(column)
