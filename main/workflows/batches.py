"""Batches: run N jobs, then a callback job, once, when the last of them has ended (GoodJob batches, Sidekiq
batches, Celery chords).

    batch_id = await queue.start_batch(
        [JobRequest(SendEmail, {"to": address}) for address in addresses],
        on_success=JobRequest(ReportSent, {"campaign": 7}),   # every job completed
        on_failure=JobRequest(AlertOps, {"campaign": 7}),     # all ended, at least one failed or was cancelled
        on_complete=JobRequest(CloseCampaign, {"campaign": 7}),  # all ended, whatever their outcome
    )

A callback job is given its payload plus `batch`: the batch's outcome (BatchOutcome, declare it in the callback's
payload model to read it). A workflow step with `each=` runs as a batch too (main/workflows/definition.py).
"""

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from main.base.jobs import JobRequest
from main.base.jobs.base_job import model_document, validate_payload
from main.errors import JobRequestError

CallbackOn = Literal["success", "failure", "complete"]


class BatchOutcome(BaseModel):
    """What a callback job is given as `batch`."""

    id: int
    status: Literal["succeeded", "failed"]
    total: int
    completed: int
    failed: int
    cancelled: int


_SAMPLE = {"id": 1, "status": "succeeded", "total": 0, "completed": 0, "failed": 0, "cancelled": 0}


def callback_specs(callbacks: Mapping[CallbackOn, JobRequest | None]) -> list[dict[str, Any]]:
    """The callbacks as the batch's row keeps them, each checked now (its payload with a `batch` outcome must be
    valid for its job) so that a bad one fails the start, not the settling."""
    specs = []
    for on, request in callbacks.items():
        if request is None:
            continue
        if not isinstance(request, JobRequest):
            raise JobRequestError(f"on_{on} must be a JobRequest(JobClass, payload), got {request!r:.80}")
        options = request.job_class._options()
        if request.run_at is not None or request.delay is not None or request.unique_key is not None:
            raise JobRequestError(f"on_{on}: a callback runs when its batch settles; it takes no run_at, delay or "
                                  "unique_key")
        given = request.payload.model_dump(mode="json") if isinstance(request.payload, BaseModel) else request.payload
        if not isinstance(given, Mapping) or "batch" in given:
            raise JobRequestError(f"on_{on}: the payload must be a mapping without a 'batch' key (the batch's "
                                  "outcome is added there when it settles)")
        stored = json.loads(model_document(request.job_class, validate_payload(request.job_class,
                                                                             {**given, "batch": _SAMPLE})))
        stored.pop("batch", None)  # the outcome goes there when the batch settles
        specs.append({"on": on, "type": options.name, "payload": stored,
                      "queue": request.queue or options.queue,
                      "priority": options.priority if request.priority is None else request.priority,
                      "max_retries": options.max_retries})
    return specs
