"""OpenTelemetry: a span per job run, in the trace that enqueued the job, carried through the database."""

import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from __tests__.conftest import QueueFactory
from __tests__.support.jobs import JOBS, RejectingJob
from main.base.jobs import BaseJob, job
from main.db.entities import Job
from main.tracing import instrument

pytestmark = pytest.mark.anyio


class Order(BaseModel):
    order_id: int


@job(name="TracedJob")
class TracedJob(BaseJob[Order]):
    async def perform(self, payload: Order) -> None:
        with trace.get_tracer("app").start_as_current_span("charge card"):  # the job's own span
            pass


# The application's provider, global as an application sets it (OpenTelemetry allows that once per process).
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    EXPORTER.clear()
    return EXPORTER


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    return PROVIDER


async def test_a_run_is_a_span_in_the_trace_that_enqueued_it(make_queue: QueueFactory, provider: TracerProvider,
                                                             spans: InMemorySpanExporter) -> None:
    queue = make_queue(jobs=[*JOBS, TracedJob])
    instrument(queue, provider)
    with provider.get_tracer("app").start_as_current_span("POST /orders") as request:
        traced = await TracedJob.perform_later({"order_id": 7})
        failing = await RejectingJob.perform_later({"message": "card declined"})
    untraced = await TracedJob.perform_later({"order_id": 8})  # no trace around it: nothing is stored
    stored = {job_id: queue.store.get(job_id).trace_context for job_id in (traced, untraced)}
    assert stored[untraced] is None and stored[traced]["traceparent"].split("-")[1] == format(
        request.get_span_context().trace_id, "032x")
    await queue.run(burst=True)  # the run happens later, elsewhere: only the stored context links it

    by_job = {span.attributes["messaging.message.id"]: span for span in spans.get_finished_spans()
              if span.name.startswith("process ")}
    run = by_job[str(traced)]
    assert run.kind is SpanKind.CONSUMER and run.name == "process TracedJob"
    assert run.context.trace_id == request.get_span_context().trace_id
    assert run.parent.span_id == request.get_span_context().span_id
    assert run.attributes["jobqueue.outcome"] == "complete" and run.status.status_code is StatusCode.UNSET
    [inner] = [span for span in spans.get_finished_spans() if span.name == "charge card" and
               span.context.trace_id == run.context.trace_id]
    assert inner.parent.span_id == run.context.span_id  # the job's own spans are children of its run
    failed = by_job[str(failing)]
    assert failed.status.status_code is StatusCode.ERROR and "card declined" in failed.status.description
    assert by_job[str(untraced)].parent is None  # a root span of its own


async def test_a_job_stored_with_an_unreadable_trace_context_still_runs(make_queue: QueueFactory,
                                                                         provider: TracerProvider,
                                                                         spans: InMemorySpanExporter) -> None:
    queue = make_queue(jobs=[*JOBS, TracedJob])
    instrument(queue, provider)
    job_id = await TracedJob.perform_later({"order_id": 9})
    with queue.database.transaction() as session:
        session.get_one(Job, job_id).trace_context = json.loads('{"traceparent": "not a trace"}')
    await queue.run(burst=True)
    assert queue.store.get(job_id).status.value == "completed"
    [run] = [span for span in spans.get_finished_spans() if span.name == "process TracedJob"]
    assert run.parent is None
