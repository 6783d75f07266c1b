"""OpenTelemetry for jobqueue: a span per job run, in the trace that enqueued the job.

    pip install 'jobqueue[otel]'            # opentelemetry-api; configure the SDK and exporter as usual
    from main.tracing import instrument
    instrument(get_job_queue())             # or JOBQUEUE_OTEL=true for `jobqueue worker`

Enqueueing stores the current trace context (W3C `traceparent`, `tracestate`, through OpenTelemetry's global
propagator) with each job; the worker runs the job inside a CONSUMER span whose parent is that context, so the
request that enqueued a job and the job's run, with every span its code opens, are one trace. The span ends with
the run: status ERROR with the error for a failed attempt (one that is retried too), attribute
`jobqueue.outcome` for every outcome.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from main.db.outcomes import Decision, Kind
from main.db.rows import ClaimedJob
from main.errors import SettingsError
from main.services.job_queue import JobQueue
from main.services.propagation import Settle

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as missing:  # the extra is not installed
    raise SettingsError("tracing needs OpenTelemetry: pip install 'jobqueue[otel]' (or opentelemetry-api)") from missing


class OpenTelemetryPropagator:
    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("jobqueue", tracer_provider=tracer_provider)

    def inject(self) -> dict[str, Any] | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier or None

    @contextmanager
    def around(self, job: ClaimedJob) -> Iterator[Settle]:
        attributes: dict[str, str | int] = {"messaging.system": "jobqueue", "messaging.operation.type": "process",
                      "messaging.destination.name": job.queue, "messaging.message.id": str(job.id),
                      "jobqueue.job_type": job.type, "jobqueue.attempt": job.attempts}
        with self.tracer.start_as_current_span(
            f"process {job.type}", context=propagate.extract(job.trace_context or {}), kind=SpanKind.CONSUMER,
            attributes=attributes, record_exception=False, set_status_on_exception=False,
        ) as span:

            def settle(decision: Decision) -> None:
                span.set_attribute("jobqueue.outcome", decision.kind.value)
                if decision.kind in (Kind.FAIL, Kind.RETRY):
                    span.set_status(Status(StatusCode.ERROR, decision.error))

            yield settle


def instrument(queue: JobQueue, tracer_provider: trace.TracerProvider | None = None) -> OpenTelemetryPropagator:
    """Trace `queue`'s jobs from enqueue to run (in this process: do it where jobs are enqueued and in workers)."""
    queue.propagator = OpenTelemetryPropagator(tracer_provider)
    return queue.propagator
