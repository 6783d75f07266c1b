"""The claim over all queues reads pending jobs in claim order from an index instead of sorting them (v2).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_due", "jobs", ["status", sa.text("priority DESC"), "run_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_due", table_name="jobs")
