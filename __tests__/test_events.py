"""Lifecycle events: what a subscriber sees of a job's life, on both engines, and that subscribers can neither
fail a job nor hold up the worker."""

import threading
from collections import defaultdict
from datetime import timedelta
from typing import Any

import anyio
import pytest

from __tests__.conftest import QueueFactory
from __tests__.support.continuation_jobs import JOBS as CONTINUATION_JOBS
from __tests__.support.continuation_jobs import ShortRunsJob
from __tests__.support.jobs import JOBS, FailingJob, NoopJob, RejectingJob
from main.clock import FrozenClock
from main.demo.seed import create_tables
from main.errors import EventSubscriptionError
from main.events import CATALOGUE, Event, EventType
from main.events.bus import event_types
from main.log import configure_logging

pytestmark = pytest.mark.anyio


class Recorder:
    """An async subscriber keeping every event; checks each carries only fields the catalogue documents."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        undocumented = set(event.fields) - set(CATALOGUE[event.type].fields)
        assert not undocumented, f"{event.type} carries {undocumented}, which the catalogue does not list"
        self.events.append(event)

    def of_job(self, job_id: int) -> list[str]:
        return [e.type.value for e in self.events if e.fields.get("job_id") == job_id]

    def of_type(self, event_type: EventType) -> list[Event]:
        return [e for e in self.events if e.type is event_type]


async def test_a_subscriber_sees_each_job_from_enqueue_to_its_outcome(make_queue: QueueFactory) -> None:
    queue = make_queue()
    recorder = Recorder()
    queue.subscribe("*", recorder)
    done = await NoopJob.perform_later({"n": 1})
    retried = await FailingJob.perform_later({"message": "try again"})
    failed = await RejectingJob.perform_later({"message": "never"})
    await queue.run(burst=True)

    assert recorder.of_job(done) == ["job.enqueued", "job.started", "job.completed"]
    assert recorder.of_job(retried) == ["job.enqueued", "job.started", "job.retry_scheduled"]
    assert recorder.of_job(failed) == ["job.enqueued", "job.started", "job.failed"]
    [retry] = recorder.of_type(EventType.JOB_RETRY_SCHEDULED)
    assert (retry.job_type, retry.queue, retry.attempt, retry.retries_left) == ("FailingJob", "default", 1, 1)
    assert retry.error == "RuntimeError: try again" and retry.retry_in > 0
    [completed] = recorder.of_type(EventType.JOB_COMPLETED)
    assert completed.duration >= 0 and completed.worker_id == queue.worker_id
    types = [e.type for e in recorder.events]
    assert types[0] is EventType.JOB_ENQUEUED and types[-1] is EventType.WORKER_STOPPED
    assert EventType.WORKER_STARTED in types


async def test_a_resumable_job_reports_its_steps_checkpoints_pauses_and_resumptions(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[*JOBS, *CONTINUATION_JOBS])
    queue.store.ensure_schema()
    create_tables(queue.database)  # the items' log
    recorder = Recorder()
    queue.subscribe("*", recorder)
    job_id = await ShortRunsJob.perform_later({"count": 12, "item_delay": 0.02})
    await queue.run(burst=True)

    of_job = recorder.of_job(job_id)
    paused, resumed = recorder.of_type(EventType.JOB_PAUSED), recorder.of_type(EventType.JOB_RESUMED)
    assert len(paused) >= 2 and len(resumed) == len(paused)  # every pause is followed by a resumption
    assert all("max_run_time" in event.reason for event in paused)
    assert [e.cursor for e in resumed] == [e.cursor for e in paused]  # each run goes on where the last stopped
    assert of_job.count("job.started") == len(paused) + 1 and of_job.count("job.released") == len(paused)
    saves = recorder.of_type(EventType.CHECKPOINT_SAVED)
    assert [e.done for e in saves if e.step == "iterate"][-1] == 12
    assert of_job.count("step.completed") == 1 and of_job[-1] == "job.completed"
    after_the_step = sum("iterate" in event.finished_steps for event in paused)  # stopped after its last item
    assert of_job.count("step.started") == len(paused) + 1 - after_the_step  # the step resumes in every other run


async def test_a_crashed_workers_job_is_reported_recovered(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock)
    recorder = Recorder()
    queue.subscribe(EventType.JOB_RECOVERED, recorder)
    job_id = await NoopJob.perform_later({})
    queue.store.claim("dead-worker", (), 1, clock.now(), clock.now() + timedelta(seconds=2))
    clock.advance(3)
    await queue.run(burst=True)
    [recovered] = recorder.events
    assert (recovered.job_id, recovered.outcome, recovered.previous_worker) == (job_id, "requeued", "dead-worker")


async def test_operations_emit_in_the_process_that_performs_them(make_queue: QueueFactory) -> None:
    queue = make_queue()
    recorder = Recorder()
    queue.subscribe("queue.*", recorder)
    queue.subscribe("job.cancel_requested", recorder)
    job_id = await NoopJob.perform_later({})
    async with queue.events.delivering():
        await queue.pause_queue("default")
        await queue.resume_queue("default")
        await queue.cancel_job(job_id)
    assert [(e.type.value, e.fields) for e in recorder.events] == [
        ("queue.paused", {"queue": "default"}), ("queue.resumed", {"queue": "default", "was_paused": True}),
        ("job.cancel_requested", {"job_id": job_id, "status": "cancelled"})]


async def test_events_emitted_in_other_threads_are_delivered(make_queue: QueueFactory) -> None:
    queue = make_queue()
    recorder = Recorder()
    queue.subscribe(EventType.JOB_ENQUEUED, recorder)
    async with queue.events.delivering():
        ids = await anyio.to_thread.run_sync(lambda: [NoopJob.perform_later_sync({"n": n}) for n in range(5)])
    assert [e.job_id for e in recorder.events] == ids


async def test_a_subscription_made_in_another_thread_while_delivering_gets_its_events(make_queue: QueueFactory) -> None:
    """A web server's thread subscribes while the worker delivers in the loop. Before: the subscription's delivery
    task was started from that thread, which a task group does not allow (NoEventLoopError)."""
    queue = make_queue()
    recorder, outcome = Recorder(), {}

    def subscribe_then_enqueue() -> None:
        try:
            queue.subscribe(EventType.JOB_ENQUEUED, recorder)
            outcome["job_id"] = NoopJob.perform_later_sync({"n": 1})
        except Exception as error:
            outcome["error"] = error

    async with queue.events.delivering():
        thread = threading.Thread(target=subscribe_then_enqueue)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        with anyio.fail_after(5):
            while not recorder.events and "error" not in outcome:
                await anyio.sleep(0.01)
    assert "error" not in outcome, outcome
    assert [e.job_id for e in recorder.events] == [outcome["job_id"]]


async def test_a_failing_subscriber_fails_no_job_and_others_still_get_every_event(make_queue: QueueFactory,
                                                                                 capsys: pytest.CaptureFixture[str],
                                                                                 ) -> None:
    queue = make_queue()
    recorder = Recorder()

    def broken(event: Event) -> None:
        raise ValueError("subscriber bug")

    failing = queue.subscribe("job.completed", broken)
    queue.subscribe("job.completed", recorder)
    ids = [await NoopJob.perform_later({"n": n}) for n in range(3)]
    await queue.run(burst=True)
    assert {queue.store.get(job_id).status.value for job_id in ids} == {"completed"}
    assert sorted(e.job_id for e in recorder.events) == ids
    assert (failing.failed, failing.delivered) == (3, 0)
    assert "event_subscriber_failed" in capsys.readouterr().err


async def test_a_stuck_subscriber_neither_holds_up_the_worker_nor_grows_without_bound(
        make_queue: QueueFactory) -> None:
    queue = make_queue()
    release = threading.Event()
    seen: list[int] = []

    def stuck(event: Event) -> None:  # a sync handler that blocks (a dead webhook without a timeout)
        seen.append(event.job_id)
        release.wait(30)

    async def too_slow(event: Event) -> None:
        await anyio.sleep(30)

    blocked = queue.subscribe("job.completed", stuck, buffer=3)
    cancelled = queue.subscribe("job.completed", too_slow, timeout=0.05, buffer=100)
    ids = [await NoopJob.perform_later({"n": n}) for n in range(20)]
    try:
        with anyio.fail_after(30):  # the worker would wait here for ever if it waited for its subscribers
            await queue.run(burst=True)
    finally:
        release.set()
    assert {queue.store.get(job_id).status.value for job_id in ids} == {"completed"}
    assert len(seen) <= 2 * 3 and blocked.dropped >= 20 - 2 * 3  # a batch in hand, a full mailbox, the rest dropped
    assert cancelled.failed >= 1  # each call cut off at its timeout


async def test_with_no_subscriber_an_event_type_is_not_routed_at_all(make_queue: QueueFactory) -> None:
    configure_logging("json", "warning")
    queue = make_queue()  # the log lines are the only observer: info events go nowhere
    assert not queue.events.wants(EventType.JOB_STARTED) and not queue.events.wants(EventType.JOB_COMPLETED)
    assert queue.events.wants(EventType.JOB_FAILED)  # an error is still logged
    subscription = queue.subscribe("job.completed", Recorder())
    assert queue.events.wants(EventType.JOB_COMPLETED)
    queue.unsubscribe(subscription)
    assert not queue.events.wants(EventType.JOB_COMPLETED)


@pytest.mark.parametrize("pattern", ["job.nope", "jobs", "", 42])
def test_a_pattern_that_names_no_event_is_refused_with_the_known_names(pattern: Any) -> None:
    with pytest.raises(EventSubscriptionError) as error:
        event_types(pattern)
    assert "job.completed" in str(error.value) or "not int" in str(error.value)


def test_patterns_select_event_types() -> None:
    assert event_types("job.failed") == {EventType.JOB_FAILED}
    assert event_types("step.*") == {EventType.STEP_STARTED, EventType.STEP_COMPLETED}
    assert event_types("*") == set(EventType)
    by_subject = defaultdict(set)
    for event_type in EventType:
        by_subject[event_type.value.split(".")[0]].add(event_type)
    assert event_types("job.*") == by_subject["job"]


async def test_a_handler_that_is_not_callable_is_refused(make_queue: QueueFactory) -> None:
    queue = make_queue()
    with pytest.raises(EventSubscriptionError, match="must be callable"):
        queue.subscribe("job.failed", "alert")  # type: ignore[arg-type]
    with pytest.raises(EventSubscriptionError, match="buffer must be"):
        queue.subscribe("job.failed", Recorder(), buffer=0)
