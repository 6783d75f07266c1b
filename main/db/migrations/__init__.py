"""Alembic migrations of the jobqueue tables, with a version table of their own (jobqueue_alembic_version), so
they live beside an application's own Alembic history. Run through main/db/schema.py (`jobqueue db ...`)."""
