"""How the CLI shows things: rich tables for people, JSON for scripts, one line for errors."""

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from main.base.jobs.continuation import checkpoint_summary
from main.db.entities import Job, WorkerRow
from main.services.documents import job_document, queue_document, worker_document
from main.services.job_queue import QueueInfo, QueueStatus, ScheduleInfo

console = Console()
error_console = Console(stderr=True)

_LIST_FIELDS = ("id", "type", "status", "queue", "priority", "attempts", "max_retries", "run_at", "last_error")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def describe_progress(job: Job) -> str:
    """'process_orders 40/100 (cursor 40), resumed 1x' for a resumable job; '' for others."""
    summary = checkpoint_summary(job.checkpoint)
    if summary is None:
        return ""
    total = "?" if summary["total"] is None else summary["total"]
    return (f"{summary['step']} {summary['done']}/{total} (cursor {json.dumps(summary['cursor'])}), "
            f"resumed {summary['resumptions']}x")


def print_queues(queues: Sequence[QueueInfo], as_json: bool) -> None:
    if as_json:
        print_json([queue_document(q) for q in queues])
        return
    table = Table("queue", "state", *(status for status in queues[0].counts) if queues else ())
    for q in queues:
        state = f"paused since {q.paused_at:%Y-%m-%d %H:%M:%S}" if q.paused_at else "active"
        table.add_row(q.name, state, *(str(n) for n in q.counts.values()))
    console.print(table if queues else "no queues yet: none has jobs or is paused")


def print_schedules(schedules: Sequence[ScheduleInfo], as_json: bool) -> None:
    rows = [{"name": info.name, "job": info.schedule.job_class._options().name, "cron": info.schedule.cron,
             "timezone": info.schedule.timezone, "missed": info.schedule.missed,
             "last_slot": info.last_slot and info.last_slot.isoformat(), "next_slot": info.next_slot.isoformat()}
            for info in schedules]
    if as_json:
        print_json(rows)
        return
    table = Table("schedule", "job", "cron", "time zone", "missed", "last slot (UTC)", "next slot (UTC)")
    for info, row in zip(schedules, rows, strict=True):
        slots = [f"{slot:%Y-%m-%d %H:%M:%S}" if slot else "-" for slot in (info.last_slot, info.next_slot)]
        table.add_row(*(str(value) for value in list(row.values())[:5]), *slots)
    console.print(table if rows else "no schedules: declare @job(cron=...) or a SCHEDULES list in the jobs module")


def print_jobs(jobs: Sequence[Job], as_json: bool) -> None:
    if as_json:
        print_json([{name: fields[name] for name in _LIST_FIELDS} for fields in map(job_document, jobs)])
        return
    wide = console.width >= WIDE
    rows = [{"id": str(job.id), "type": job.type, "status": job.status.value, "queue": job.queue,
             "prio": str(job.priority), "tries": f"{job.attempts}/{job.max_retries + 1}",
             "run_at (UTC)": job.run_at.strftime("%Y-%m-%d %H:%M:%S" if wide else "%m-%d %H:%M"),
             "last error": job.last_error or ""} for job in jobs]
    console.print(fitted_table(f"{len(jobs)} job(s), newest first", rows, give_way=("type", "last error"),
                               wide_only=("queue", "prio")))


WIDE = 110  # columns from which tables show everything (a narrower one drops what can be found elsewhere)


def fitted_table(title: str, rows: list[dict[str, str]], *, give_way: Sequence[str],
                 wide_only: Sequence[str] = ()) -> Table:
    """A table that stays readable at the console's width, 80 columns included, and in pipes: columns whose value
    cut short would mean nothing (ids, statuses, counts) keep their width; the `give_way` columns share what is
    left, cut with an ellipsis (at most 60 characters); narrower than WIDE, the `wide_only` columns are left out
    (--json has every field)."""
    names = [name for name in (rows[0] if rows else {}) if console.width >= WIDE or name not in wide_only]
    widths = {name: max([len(name), *(len(row[name]) for row in rows)]) for name in names}
    left = console.width - 1 - 3 * len(names) - sum(width for name, width in widths.items() if name not in give_way)
    for share, name in enumerate(name for name in names if name in give_way):
        widths[name] = max(4, min(widths[name], 60, left // (len(give_way) - share) if share < len(give_way) - 1
                                  else left))
        left -= widths[name]
    narrow = console.width < WIDE and any(name in wide_only for name in (rows[0] if rows else {}))
    table = Table(title=title + (" (--json for every field)" if narrow else ""))
    for name in names:
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=widths[name])
    for row in rows:
        table.add_row(*(row[name] for name in names))
    return table


def print_job(job: Job, as_json: bool) -> None:
    data = job_document(job)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"job {job.id} {describe_progress(job)}".strip(), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in data.items():
        if value is None:  # --json has every field; the table only those that say something
            continue
        shown = json.dumps(value, indent=2) if isinstance(value, dict | list) else value
        table.add_row(name, _for_people(str(shown)))
    console.print(table)


SHOWN_CHARS = 2_000  # of one field in the table; --json prints everything


def _for_people(text: str) -> str:
    """A field cut to what a terminal can show: a 10 MB payload would take minutes to lay out."""
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}\n... ({len(text) - SHOWN_CHARS:,} more characters; --json prints all)"


def status_as_dict(status: QueueStatus) -> dict[str, Any]:
    return {
        "worker_id": status.worker_id,
        "uptime_seconds": status.uptime_seconds,
        "registered_types": status.registered_types,
        "counts_by_status": status.counts_by_status,
        "counts_by_queue": status.counts_by_queue,
        "paused_queues": {name: since.isoformat() for name, since in status.paused_queues.items()},
        "workers": [worker_document(worker, running) for worker, running in status.workers],
        "running": [
            {"id": job.id, "type": job.type, "attempt": job.attempts, "worker_id": job.worker_id,
             "started_at": job.started_at.isoformat() if job.started_at else None,
             "progress": status.progress.get(job.id or 0)}
            for job in status.running
        ],
    }


def print_workers(workers: Sequence[tuple[WorkerRow, int]], as_json: bool) -> None:
    if as_json:
        print_json([worker_document(worker, running) for worker, running in workers])
        return
    rows = [{"id": worker.id, "host": worker.host, "pid": str(worker.pid), "queues": ",".join(worker.queues) or "all",
             "running": f"{running}/{worker.concurrency}", "started (UTC)": f"{worker.started_at:%Y-%m-%d %H:%M:%S}",
             "last beat (UTC)": f"{worker.heartbeat_at:%H:%M:%S}", "version": worker.version}
            for worker, running in workers]
    if rows:
        console.print(fitted_table(f"{len(workers)} live worker(s)", rows, give_way=("id", "queues"),
                                   wide_only=("host", "pid", "started (UTC)", "version")))
    else:
        console.print("no live workers")


def print_status(status: QueueStatus, as_json: bool) -> None:
    if as_json:
        print_json(status_as_dict(status))
        return
    statuses = list(status.counts_by_status)
    table = Table(title="jobs by queue and status")
    table.add_column("queue", style="bold")
    for name in statuses:
        table.add_column(name, justify="right")
    for queue, counts in sorted(status.counts_by_queue.items()):
        shown = f"{queue} (paused)" if queue in status.paused_queues else queue
        table.add_row(shown, *(str(counts.get(name, 0)) for name in statuses))
    table.add_row("all", *(str(status.counts_by_status[name]) for name in statuses), style="bold")
    console.print(table)
    if status.running:
        rows = [{"id": str(job.id), "type": job.type, "attempt": str(job.attempts), "worker": job.worker_id or "",
                 "started (UTC)": f"{job.started_at:%H:%M:%S}" if job.started_at else "",
                 "progress": describe_progress(job)} for job in status.running]
        console.print(fitted_table("running jobs", rows, give_way=("type", "worker", "progress")))
    print_workers(status.workers, as_json=False)
    console.print(f"registered job types: {', '.join(status.registered_types) or '(none)'}")
