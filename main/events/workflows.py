"""The events of workflow runs that end: emitted once the transaction that ended them has committed."""

from collections.abc import Sequence

from main.db.entities.workflow import RunStatus
from main.events.bus import EventBus
from main.events.catalogue import EventType

_ENDED = {RunStatus.COMPLETED: EventType.WORKFLOW_COMPLETED, RunStatus.FAILED: EventType.WORKFLOW_FAILED}


def announce_runs_ended(events: EventBus, runs: Sequence[tuple[int, str, RunStatus]]) -> None:
    for run_id, workflow, status in runs:
        events.emit(_ENDED[status], run_id=run_id, workflow=workflow)
