"""The seam through which a job carries its enqueuer's context (a trace) to the worker that runs it.

jobqueue stores what `inject` returns with each job enqueued (once per enqueue call, and only when it returns
something: no propagator, or no active trace, costs nothing) and hands it back to `around` when the job runs.
main/tracing.py is the OpenTelemetry propagator.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from main.db.outcomes import Decision
from main.db.rows import ClaimedJob

Settle = Callable[[Decision], None]  # told how the run ended


class Propagator(Protocol):
    def inject(self) -> dict[str, Any] | None:
        """The caller's context, to store with the jobs it enqueues (JSON-ready); None: nothing to carry."""
        ...

    def around(self, job: ClaimedJob) -> AbstractContextManager[Settle]:
        """Entered around one run of `job` (in its task: what it sets is current for the job's code)."""
        ...
