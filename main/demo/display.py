"""What the demo shows on screen: progress bars per resumable job, the shop's numbers, the queue."""

from collections.abc import Sequence

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table

from main.base.jobs.continuation import Checkpoint
from main.db.engine import Database
from main.db.entities import Job
from main.demo.seed import stats
from main.services.job_queue import JobQueue


def progress_table(jobs: Sequence[Job], title: str = "resumable jobs") -> Table:
    table = Table(title=title)
    for column in ("job", "status", "step", "progress", "done", "resumed"):
        table.add_column(column, no_wrap=True)
    for job in jobs:
        summary = Checkpoint.model_validate(job.checkpoint or {}).summary()
        total = summary["total"]
        table.add_row(
            f"{job.id} {job.type}", job.status.value, summary["step"] or "-",
            ProgressBar(total=total, completed=summary["done"], width=20),
            f"{summary['done']}/{'?' if total is None else total}", str(summary["resumptions"]),
        )
    return table


def shop_table(database: Database) -> Table:
    numbers = stats(database)
    table = Table(title="shop")
    for name in numbers:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(f"{value:,}" for value in numbers.values()))
    return table


def queue_table(queue: JobQueue) -> Table:
    counts = queue.get_status_sync().counts_by_status
    table = Table(title="queue")
    for name in counts:
        table.add_column(name, justify="right")
    table.add_row(*(str(value) for value in counts.values()))
    return table


def dashboard(queue: JobQueue, job_types: Sequence[str]) -> Group:
    """Every demo job that is running or pending, or finished most recently, with the shop and the queue."""
    jobs = queue.store.list_jobs(limit=8, types=job_types)
    return Group(progress_table(jobs), shop_table(queue.database), queue_table(queue))
