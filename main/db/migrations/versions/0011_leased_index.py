"""Crash recovery reads jobs by lease from an index of leased jobs (`lease_expires_at IS NOT NULL`) instead of one of
running jobs (`status = 'running'`): an outcome's statement asks for `status = 'running'` to check that the job is
still the worker's, and PostgreSQL's planner took that as a reason to read the running jobs' index, an entry for
every job run since the last vacuum, for each batch of outcomes. The entries are the same: a job holds a lease
exactly while it runs.

Revision ID: 0011
Revises: 0010
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.drop_index("ix_jobs_running_lease", table_name="jobs")
    op.create_index("ix_jobs_leased", "jobs", ["lease_expires_at"], **_where("lease_expires_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_jobs_leased", table_name="jobs")
    op.create_index("ix_jobs_running_lease", "jobs", ["lease_expires_at"], **_where("status = 'running'"))
