"""The events of workflow runs that end: emitted once the transaction that ended them has committed."""

from collections.abc import Sequence

from main.db.entities.workflow import RunStatus
from main.db.workflow_steps import RunEnded
from main.events.bus import EventBus
from main.events.catalogue import EventType

_ENDED = {RunStatus.COMPLETED: EventType.WORKFLOW_COMPLETED, RunStatus.FAILED: EventType.WORKFLOW_FAILED}


def announce_runs_ended(events: EventBus, runs: Sequence[RunEnded]) -> None:
    for run in runs:
        events.emit(_ENDED[run.status], run_id=run.run_id, workflow=run.workflow)
