"""Keeps the leases of this worker's jobs alive on an interval of its own (JOBQUEUE_HEARTBEAT_INTERVAL), from a
thread of its own: no poll interval, no busy job and not even an async job that blocks the event loop
(`time.sleep` in `async def perform`) can let a healthy job be taken for dead and run twice. The same thread
is the event loop's watchdog: a loop that has not ticked for LOOP_BLOCKED_AFTER seconds is logged with the
job whose code holds it. Cancel requests and leases lost, learned by a beat, are acted on in the loop.
"""

import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import anyio
from anyio import CapacityLimiter
from anyio.abc import TaskStatus
from sqlalchemy.exc import DBAPIError
from structlog.typing import FilteringBoundLogger

from main.base.jobs import BaseJob
from main.clock import Clock
from main.db.engine import describe_database_error
from main.db.store import Heartbeat as Beat
from main.db.store import JobStore
from main.events import EventBus, EventType
from main.services.runner import RunningJob, StopReason
from main.services.worker.completer import Completer
from main.services.worker.executions import Executions

T = TypeVar("T")

LOOP_BLOCKED_AFTER = 1.0  # seconds without a tick of the event loop before the watchdog reports it
_TICK = LOOP_BLOCKED_AFTER / 4  # how often the loop proves it runs (and acts on what the beats learned)


class Heartbeat:
    def __init__(self, store: JobStore, worker_id: str, clock: Clock, executions: Executions, completer: Completer,
                 events: EventBus, log: FilteringBoundLogger, *, interval: float, lease_seconds: float,
                 sync_clock: Callable[[], None]) -> None:
        self.store, self.worker_id, self.clock, self.events, self.log = store, worker_id, clock, events, log
        self.sync_clock = sync_clock
        self.executions, self.completer = executions, completer
        self.interval, self.lease_seconds = interval, lease_seconds
        self._learned: queue.SimpleQueue[tuple[Mapping[int, RunningJob], Beat]] = queue.SimpleQueue()
        self._last_tick = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._failing = False  # the last beat failed
        self.last_beat = time.monotonic()  # of the last beat that succeeded (or had nothing to renew): /healthz

    async def run(self) -> None:
        """Beat in a thread of its own until cancelled; tick in the loop meanwhile."""
        stop = threading.Event()
        self._loop_thread, self._last_tick = threading.get_ident(), time.monotonic()
        async with anyio.create_task_group() as tg:
            await tg.start(self._tick, stop)  # started: its `finally` will end the thread
            await anyio.to_thread.run_sync(self._beat_until, stop, limiter=CapacityLimiter(1))

    async def _tick(self, stop: threading.Event, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            task_status.started()
            while True:
                self._last_tick = time.monotonic()
                self._act_on_what_beats_learned()
                await anyio.sleep(_TICK)
        finally:
            stop.set()  # the beating thread ends with the worker

    def _act_on_what_beats_learned(self) -> None:
        while not self._learned.empty():
            running, beat = self._learned.get_nowait()
            for reason, job_ids in ((StopReason.CANCELLED, beat.cancel_requested), (StopReason.LEASE_LOST, beat.lost)):
                for job_id in job_ids:
                    if job_id in running:  # an outcome already written counts as "lost": nothing to stop
                        running[job_id].stop(reason)
            for job_id in beat.paused.intersection(running):  # resumable ones stop at their next item; others run on
                running[job_id].signal.request(f"queue {running[job_id].job.queue!r} paused")

    # -- the heartbeat thread ----------------------------------------------------------------------------

    def _beat_until(self, stop: threading.Event) -> None:
        next_beat = time.monotonic() + self.interval
        row_interval = max(self.interval, self.lease_seconds / 3)  # the worker's own row: `jobqueue workers`
        next_row_beat = time.monotonic() + row_interval
        reported = False  # this stall of the loop is logged once
        while not stop.wait(min(self.interval, _TICK)):
            now = time.monotonic()
            stalled = now - self._last_tick
            if stalled < LOOP_BLOCKED_AFTER:
                reported = False
            elif not reported:
                reported = True
                self._report_blocked_loop(stalled)
            if now >= next_beat:
                next_beat = now + self.interval
                self.beat()
            if now >= next_row_beat:
                next_row_beat = now + row_interval
                self._beating(self._beat_row)

    def beat(self) -> None:
        """Renew the leases of the running jobs and of those whose outcome waits in the completer."""
        running = self.executions.snapshot()  # the executions this beat speaks for, not any claimed meanwhile
        job_ids = [*running, *self.completer.awaiting]
        if job_ids:
            lease_until = self.clock.now() + timedelta(seconds=self.lease_seconds)
            beat = self._beating(self.store.heartbeat, self.worker_id, job_ids, lease_until)
            if beat is None:
                return
            if beat.cancel_requested or beat.lost or beat.paused:
                self._learned.put((running, beat))
        self.last_beat = time.monotonic()
        self.events.emit(EventType.WORKER_HEARTBEAT, jobs=len(job_ids),
                         loop_lag=round(self.last_beat - self._last_tick, 3))

    def _beat_row(self) -> None:
        """The worker's own row; the clock's offset from the database's is measured again first (a clock that NTP
        stepped meanwhile is corrected for here)."""
        self.sync_clock()
        self.store.beat_worker(self.worker_id, self.clock.now())

    def _beating(self, statement: Callable[..., T], *args: Any) -> T | None:
        """Run one of the heartbeat's statements; a failure is logged once per outage, not at every beat."""
        try:
            result = statement(*args)
        except DBAPIError as exc:
            if not self._failing:
                self.log.error("heartbeat_failed", error=describe_database_error(exc),
                               note="retrying at every beat; leases last JOBQUEUE_LEASE_SECONDS")
            self._failing = True
            return None
        if self._failing:
            self._failing = False
            self.log.info("heartbeat_recovered")
        return result

    def _report_blocked_loop(self, stalled: float) -> None:
        job = _job_on_the_stack(self._loop_thread)
        self.log.error(
            "event_loop_blocked", seconds=round(stalled, 2), job_id=job and job.context.job_id,
            job_type=job and job.context.job_type, attempt=job and job.context.attempt,
            note="blocking code in an async job (time.sleep, a sync client) stalls every job of this worker and "
                 "defeats timeouts; await instead, or make perform a plain def to run it in a thread; leases are "
                 "kept meanwhile",
        )


def _job_on_the_stack(thread_id: int) -> BaseJob | None:  # type: ignore[type-arg]
    """The job whose code the thread is running, if any: the innermost frame whose `self` is a job."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseJob):
            return candidate
        frame = frame.f_back
    return None
