"""Proof for the demo: was every item processed exactly once? Is the set-up working?"""

import importlib
import sys
from dataclasses import dataclass

from sqlalchemy import inspect
from sqlmodel import func, select

from main.db.engine import Database
from main.db.entities import DEMO_TABLES, ProcessingLog


@dataclass(frozen=True)
class ExactlyOnce:
    job_type: str
    processed: int  # log rows
    distinct: int  # distinct items among them

    @property
    def duplicates(self) -> int:
        return self.processed - self.distinct


def exactly_once(database: Database, job_type: str) -> ExactlyOnce:
    with database.transaction() as session:
        rows = session.exec(select(func.count(), func.count(func.distinct(ProcessingLog.item_key))).where(
            ProcessingLog.job_type == job_type
        )).one()
    return ExactlyOnce(job_type, processed=rows[0], distinct=rows[1])


def setup_checks(database: Database, registered: list[str], demo_types: list[str]) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) for everything the demo needs."""
    checks = [("Python 3.11+", sys.version_info >= (3, 11), sys.version.split()[0])]
    for package in ("sqlmodel", "pydantic", "anyio", "tenacity", "structlog", "typer", "rich", "psycopg"):
        try:
            module = importlib.import_module(package)
            checks.append((f"package {package}", True, getattr(module, "__version__", "installed")))
        except ImportError as exc:
            checks.append((f"package {package}", False, str(exc)))
    try:
        tables = set(inspect(database.engine).get_table_names())
        checks.append(("database reachable", True, database.engine.url.render_as_string()))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding
        return [*checks, ("database reachable", False, str(exc))]
    checks.append(("queue tables", {"jobs", "jobqueue_alembic_version"} <= tables, "jobs, jobqueue_alembic_version"))
    missing = [table.name for table in DEMO_TABLES if table.name not in tables]
    detail = f"missing: {', '.join(missing)}" if missing else "all"
    checks.append(("demo tables (jobqueue demo seed)", not missing, detail))
    unregistered = [name for name in demo_types if name not in registered]
    checks.append(("six demo jobs registered", not unregistered, ", ".join(unregistered) or "all"))
    return checks
