"""The events of what the end of jobs moved on (workflow runs that ended, batches that started or settled): emitted
once the transaction that moved them has committed."""

from main.db.entities.workflow import RunStatus
from main.db.followups import Advanced
from main.events.bus import EventBus
from main.events.catalogue import EventType

_ENDED = {RunStatus.COMPLETED: EventType.WORKFLOW_COMPLETED, RunStatus.FAILED: EventType.WORKFLOW_FAILED}


def announce_advanced(events: EventBus, advanced: Advanced) -> None:
    for batch_id, jobs in advanced.batches_started:
        events.emit(EventType.BATCH_STARTED, batch_id=batch_id, jobs=jobs)
    for run in advanced.runs_ended:
        events.emit(_ENDED[run.status], run_id=run.run_id, workflow=run.workflow)
    for batch in advanced.batches_settled:
        events.emit(EventType.BATCH_SETTLED, batch_id=batch.batch_id, status=batch.status.value, total=batch.total,
                    completed=batch.completed, failed=batch.failed, cancelled=batch.cancelled,
                    callbacks=batch.callbacks)
