"""The queues table: queues with a state of their own, paused or not (`jobqueue queues pause NAME`).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobqueue_queues",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("paused_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("jobqueue_queues")
