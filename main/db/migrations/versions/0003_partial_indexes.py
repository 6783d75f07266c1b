"""Partial indexes, one per state a query looks for: a job's claim and outcome no longer rewrite an entry in each
of four indexes that start with `status` (v3).

Revision ID: 0003
Revises: 0002
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


PENDING, RUNNING = _where("status = 'pending'"), _where("status = 'running'")
CLAIM_ORDER: list[str | sa.TextClause] = [sa.text("priority DESC"), "run_at", "id"]


def upgrade() -> None:
    for old in ("ix_jobs_claim", "ix_jobs_due", "ix_jobs_lease", "ix_jobs_finished"):
        op.drop_index(old, table_name="jobs")
    op.create_index("ix_jobs_pending", "jobs", CLAIM_ORDER, **PENDING)
    op.create_index("ix_jobs_pending_queue", "jobs", ["queue", *CLAIM_ORDER], **PENDING)
    op.create_index("ix_jobs_running_lease", "jobs", ["lease_expires_at"], **RUNNING)
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"], **_where("finished_at IS NOT NULL"))


def downgrade() -> None:
    for new in ("ix_jobs_pending", "ix_jobs_pending_queue", "ix_jobs_running_lease", "ix_jobs_finished_at"):
        op.drop_index(new, table_name="jobs")
    op.create_index("ix_jobs_claim", "jobs", ["status", "queue", "priority", "run_at"])
    op.create_index("ix_jobs_due", "jobs", ["status", *CLAIM_ORDER])
    op.create_index("ix_jobs_lease", "jobs", ["status", "lease_expires_at"])
    op.create_index("ix_jobs_finished", "jobs", ["status", "finished_at"])
