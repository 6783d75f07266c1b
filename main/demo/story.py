"""The one-shot demo: interrupt -> checkpoint -> resume, with real worker processes and real signals.

1. seed the quick data set, every order pending;
2. enqueue ProcessOrdersJob (step style); a worker process starts on it; SIGTERM part-way: the job stops at
   the next item boundary, saves its checkpoint and goes back to pending;
3. show the checkpoint; a new worker process resumes it after the last checkpointed order;
4. the same with ProcessOrdersIterationJob (enumerator style), but the worker is killed with SIGKILL: no
   chance to save; the lease expires and the next worker resumes from the last checkpoint;
5. prove every order was processed exactly once by each job (the processing log's unique constraint).
"""

import json
import signal
import time
from typing import Any

from rich.live import Live
from rich.table import Table

from main.base.jobs.continuation import Checkpoint, ContinuableJob
from main.cli.output import console
from main.db.entities import JobStatus
from main.demo.checks import ExactlyOnce, exactly_once
from main.demo.display import progress_table
from main.demo.seed import reset_orders, seed
from main.demo.worker_process import WorkerProcess
from main.jobs import ProcessOrdersIterationJob, ProcessOrdersJob
from main.services.job_queue import JobQueue

ITEM_DELAY = 0.04  # seconds of simulated work per order: 100 orders take about 4 s
STOP_AT = 40  # signal the first worker once this many orders are done


def run_story(queue: JobQueue) -> bool:
    console.rule("1. seed")
    numbers = seed(queue.database, "quick", all_pending=True)
    console.print(f"{numbers['orders']} orders (all pending), {numbers['customers']} customers, "
                  f"{numbers['recipients']} campaign recipients")
    results = [
        _interrupt_and_resume(queue, ProcessOrdersJob, signal.SIGTERM, "2. step style: SIGTERM part-way, then resume"),
        _interrupt_and_resume(queue, ProcessOrdersIterationJob, signal.SIGKILL,
                              "3. enumerator style: SIGKILL part-way (no goodbye), then resume"),
    ]
    console.rule("4. exactly once?")
    table = Table()
    for column in ("job", "processed", "distinct", "duplicates", "verdict"):
        table.add_column(column, no_wrap=True)
    verdicts = [proof.processed == proof.distinct == 100 for _, proof in results]  # 100 orders were seeded
    for (job_type, proof), ok in zip(results, verdicts, strict=True):
        table.add_row(job_type, str(proof.processed), str(proof.distinct), str(proof.duplicates),
                      "[green]each order exactly once[/green]" if ok else "[red]WRONG[/red]")
    console.print(table)
    return all(verdicts)


def _interrupt_and_resume(
    queue: JobQueue, job_class: type[ContinuableJob[Any]], signum: int, title: str
) -> tuple[str, ExactlyOnce]:
    console.rule(title)
    reset_orders(queue.database)
    job_id = job_class.perform_later_sync({"item_delay": ITEM_DELAY})
    console.print(f"enqueued {job_class.options.name} as job {job_id}; starting worker A")
    worker = WorkerProcess.for_settings(queue.settings)
    _watch(queue, job_id, until=lambda state, row: state.items_done >= STOP_AT)
    worker.stop(signum)
    console.print(f"worker A (pid {worker.pid}) got {signal.Signals(signum).name}; exit code {worker.exit_code}")
    row = queue.store.get(job_id)
    console.print(f"job {job_id} is now [bold]{row.status.value}[/bold] with this checkpoint in its row:")
    console.print_json(json.dumps(row.checkpoint))
    if signum == signal.SIGKILL:
        console.print(f"the row still says running: worker B takes it over once the lease "
                      f"({queue.settings.lease_seconds:g}s) expires")
    console.print("starting worker B")
    with WorkerProcess.for_settings(queue.settings):
        final = _watch(queue, job_id, until=lambda state, row: row.status == JobStatus.COMPLETED)
    row = queue.store.get(job_id)
    console.print(f"job {job_id} completed: {row.attempts} attempt(s) counted, {final.resumptions} graceful "
                  "resumption(s); a crash costs an attempt, a SIGTERM does not")
    return job_class.options.name, exactly_once(queue.database, job_class.options.name)


def _watch(queue: JobQueue, job_id: int, until: Any, timeout: float = 60) -> Checkpoint:
    deadline = time.monotonic() + timeout
    with Live(console=console, refresh_per_second=8, transient=False) as live:
        while True:
            row = queue.store.get(job_id)
            state = Checkpoint.model_validate(row.checkpoint or {})
            live.update(progress_table([row], title=f"job {job_id}"))
            if until(state, row):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not get there within {timeout:g}s")
            time.sleep(0.1)
    console.print()
    return state
