"""`jobqueue batches list/show ID`: batches, and one batch with its counts, callbacks and jobs."""

from typing import Annotated

import typer

from main.cli import AsJson, app, open_queue
from main.cli.output import console, fitted_table, print_json
from main.db.entities import BatchStatus
from main.services.documents import batch_document, batch_summary

batches_app = typer.Typer(help="Batches: jobs enqueued together, with callbacks that run once they have all ended.",
                          no_args_is_help=True)
app.add_typer(batches_app, name="batches")


@batches_app.command("show")
def show(batch_id: Annotated[int, typer.Argument(metavar="ID", help="The batch's id")],
         as_json: AsJson = False) -> None:
    """One batch: its status, its jobs by status, its callbacks, and each job (state, attempts, error)."""
    document = batch_document(*open_queue().store.batch(batch_id))
    if as_json:
        print_json(document)
        return
    took = f", took {document['seconds']:.2f}s" if document["seconds"] is not None else ""
    step = (f" · step job {document['step_job_id']} of workflow run {document['workflow_run_id']}"
            if document["step_job_id"] is not None else "")
    counts = ", ".join(f"{n} {status}" for status, n in document["jobs_by_status"].items()) or "no jobs"
    callbacks = ", ".join(f"on {c['on']}: {c['type']}" for c in document["callbacks"]) or "none"
    console.print(f"batch {document['id']} · {document['status']}{took}{step}\n"
                  f"{document['total']} job(s): {counts}\ncallbacks: {callbacks}", markup=False)
    rows = [{"job": str(job["id"]), "type": job["type"], "status": job["status"],
             "tries": f"{job['attempts']}/{job['max_retries'] + 1}", "error": job["error"] or ""}
            for job in document["jobs"]]
    if rows:
        console.print(fitted_table("jobs, in the order given", rows, give_way=("error",)))


@batches_app.command("list")
def list_batches(
    status: Annotated[BatchStatus | None, typer.Option(help="Only batches in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    as_json: AsJson = False,
) -> None:
    """The newest batches, with their jobs by status."""
    batches = [batch_summary(batch, counts) for batch, counts in open_queue().store.batches(status, limit)]
    if as_json:
        print_json(batches)
        return
    rows = [{"batch": str(batch["id"]), "status": batch["status"], "total": str(batch["total"]),
             "jobs": " ".join(f"{n} {job_status}" for job_status, n in batch["jobs_by_status"].items()),
             "callbacks": ", ".join(c["on"] for c in batch["callbacks"]) or "-",
             "started (UTC)": batch["created_at"][:19].replace("T", " ")} for batch in batches]
    console.print(fitted_table(f"{len(rows)} batch(es), newest first", rows, give_way=("jobs",))
                  if rows else "no batches")
