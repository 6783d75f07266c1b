"""`jobqueue workflows ...`: workflow runs, and one run step by step (status, attempts, time, result or error)."""

from typing import Annotated, Any

import typer

from main.cli import AsJson, app, open_queue
from main.cli.output import console, fitted_table, print_json
from main.db.entities import RunStatus
from main.services.documents import run_document
from main.services.job_queue import JobQueue

workflows_app = typer.Typer(help="Workflow runs: list them, show one step by step.", no_args_is_help=True)
app.add_typer(workflows_app, name="workflows")

_MARKS = {"completed": "✓", "failed": "✗", "cancelled": "-", "running": "▶", "pending": "…", "blocked": "⋯"}


@workflows_app.command("list")
def list_runs(
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    as_json: AsJson = False,
) -> None:
    """The newest workflow runs, with their steps by status."""
    runs = [run_document(run, steps, {}) for run, steps in open_queue().store.workflow_runs(status, limit)]
    if as_json:
        print_json(runs)
        return
    rows = [{"run": str(run["id"]), "workflow": run["workflow"], "status": run["status"],
             "steps": " ".join(f"{n} {status}" for status, n in run["steps_by_status"].items()),
             "started (UTC)": run["created_at"][:19].replace("T", " ")} for run in runs]
    console.print(fitted_table(f"{len(rows)} workflow run(s), newest first", rows, give_way=("workflow", "steps"))
                  if rows else "no workflow runs")


@workflows_app.command("show")
def show(run_id: Annotated[int, typer.Argument(metavar="ID", help="The run's id")], as_json: AsJson = False) -> None:
    """One run: each step (dependencies first) with what it waits for, its state, attempts, time, result or error."""
    queue = open_queue()
    if as_json:
        print_json(run_document(*queue.store.workflow_run(run_id)))
    else:
        print_run(queue, run_id)


@workflows_app.command("cancel")
def cancel(run_id: Annotated[int, typer.Argument(metavar="ID", help="The run's id")], as_json: AsJson = False) -> None:
    """Cancel a running run: its steps still to run are cancelled, its running steps stop."""
    cancelled, asked = open_queue().cancel_workflow_sync(run_id)
    if as_json:
        print_json({"id": run_id, "status": "cancelled", "cancelled": cancelled, "asked_to_stop": asked})
    else:
        console.print(f"workflow run {run_id} cancelled: {cancelled} step(s) will not run, {asked} running step(s) "
                      "asked to stop")


def print_run(queue: JobQueue, run_id: int) -> None:
    document = run_document(*queue.store.workflow_run(run_id))
    took = f", took {document['seconds']:.2f}s" if document["seconds"] is not None else ""
    console.print(f"run {document['id']} · {document['workflow']} · {document['status']}{took}", markup=False)
    rows = [_row(step) for step in document["steps"]]
    console.print(fitted_table("steps, dependencies first", rows, give_way=("waits for", "result / error")))


def _row(step: dict[str, Any]) -> dict[str, str]:
    ended_well = step["status"] == "completed"
    outcome = (str(step["result"]) if ended_well and step["result"] is not None
               else "" if ended_well else step["error"] or "")
    seconds = f"{step['seconds']:.2f}s" if step["seconds"] is not None else ""
    return {"step": f"{_MARKS.get(step['status'], ' ')} {step['step']}", "status": step["status"],
            "waits for": ", ".join(step["waits_for"]) or "-", "tries": f"{step['attempts']}/{step['max_retries'] + 1}",
            "time": seconds, "job": str(step["job_id"]), "result / error": outcome}
