"""Both styles side by side on the same data: each job is interrupted half-way and resumed, inline, with the
same code path as a worker. Printed per job: run time, checkpoints written, checkpoint overhead per item,
resumptions, duplicates found."""

import time
from dataclasses import dataclass
from typing import Any

from main.base.jobs.continuation import Checkpoint
from main.base.jobs.continuation.testing import interrupt_after_items, run_job
from main.demo.catalog import PAIRS
from main.demo.checks import exactly_once
from main.demo.seed import reset_orders
from main.services.job_queue import JobQueue


@dataclass(frozen=True)
class StyleRun:
    job_type: str
    style: str
    items: int
    seconds: float
    checkpoints: int
    overhead_ms_per_item: float
    resumptions: int
    duplicates: int
    processed: int


async def compare_styles(queue: JobQueue, item_delay: float = 0.0) -> list[StyleRun]:
    runs = []
    for _, step_style, iteration_style in PAIRS:
        for style, job_class in (("step", step_style), ("enumerator", iteration_style)):
            reset_orders(queue.database)
            runs.append(await _run(queue, job_class, style, item_delay))
    return runs


async def _run(queue: JobQueue, job_class: Any, style: str, item_delay: float) -> StyleRun:
    job_id = await job_class.perform_later({"item_delay": item_delay})
    started = time.perf_counter()
    first = await run_job(job_id, interrupt=interrupt_after_items(5))
    total = Checkpoint.model_validate(first.checkpoint).summary()["total"] or 10
    await run_job(job_id, interrupt=interrupt_after_items(max(1, total // 2 - 5)))
    row = await run_job(job_id)
    seconds = time.perf_counter() - started
    state = Checkpoint.model_validate(row.checkpoint)
    items = state.items_done
    proof = exactly_once(queue.database, job_class.options.name)
    return StyleRun(
        job_type=job_class.options.name, style=style, items=items, seconds=seconds, checkpoints=state.saves,
        overhead_ms_per_item=1000 * state.save_seconds / max(items, 1), resumptions=state.resumptions,
        duplicates=proof.duplicates, processed=proof.processed,
    )
