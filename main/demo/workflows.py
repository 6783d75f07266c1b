"""`jobqueue demo workflows`: the checkout workflow (main/jobs/checkout_workflow.py) in a real worker process.

1. two orders: one for a SKU in stock, one for a SKU out of stock; both charges time out once and retry;
2. the first run completes; the second fails at its inventory step, and its confirmation is never sent;
3. the stock is fixed and the failed step retried: the run goes on from there and completes.
"""

import time

from main.cli.output import console
from main.cli.workflows import print_run
from main.db.entities import RunStatus, StockItem
from main.demo.seed import create_tables
from main.demo.worker_process import WorkerProcess
from main.jobs.checkout_workflow import ProcessOrder
from main.services.job_queue import JobQueue


def run_workflow_demo(queue: JobQueue) -> bool:
    create_tables(queue.database)
    with queue.database.transaction() as session:
        session.merge(StockItem(sku="mug", on_hand=10))
        session.merge(StockItem(sku="teapot", on_hand=0))
    with WorkerProcess.for_settings(queue.settings):
        console.rule("1. two checkouts: a mug (in stock) and a teapot (out of stock)")
        mug = queue.start_workflow_sync(ProcessOrder, {"order_ref": "A-1001", "email": "ada@example.com",
                                                       "sku": "mug", "quantity": 2, "amount_cents": 2400})
        teapot = queue.start_workflow_sync(ProcessOrder, {"order_ref": "A-1002", "email": "alan@example.com",
                                                          "sku": "teapot", "quantity": 1, "amount_cents": 4500})
        _wait(queue, mug, teapot)
        console.rule("2. the mug's run completed (its payment retried once); the teapot's failed at the inventory")
        print_run(queue, mug)
        print_run(queue, teapot)
        console.rule("3. restock the teapot, retry the failed step: the run goes on from there")
        with queue.database.transaction() as session:
            session.merge(StockItem(sku="teapot", on_hand=5))
        _, steps, _ = queue.store.workflow_run(teapot)
        [failed] = [step for step in steps if step.workflow_step == "update_inventory"]
        queue.retry_job_sync(failed.id or 0)
        _wait(queue, teapot)
        print_run(queue, teapot)
    return all(queue.store.workflow_run(run)[0].status == RunStatus.COMPLETED for run in (mug, teapot))


def _wait(queue: JobQueue, *runs: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(queue.store.workflow_run(run)[0].status == RunStatus.RUNNING for run in runs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflow runs {runs} still running after {timeout:g}s")
        time.sleep(0.1)
