"""The Prometheus metrics of a worker, fed by the lifecycle events: a subscriber of the catalogue like the logs.

Counters and histograms count what this process saw; with `jobqueue worker --processes N` every process writes
its values to PROMETHEUS_MULTIPROC_DIR and the supervisor's scrape adds them up (prometheus-client's
multiprocess mode), so one scrape shows the whole machine. What only the database knows (queue depth, the
age of the oldest due job) is read at scrape time: see collector.py.
"""

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from main.events import Event, EventBus, EventType

# Job durations: from a no-op (ms) to long batch jobs (an hour).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

# The outcome label of jobqueue_jobs_finished_total, by the event that ends a run.
OUTCOMES = {EventType.JOB_COMPLETED: "completed", EventType.JOB_FAILED: "failed",
            EventType.JOB_RETRY_SCHEDULED: "retried", EventType.JOB_CANCELLED: "cancelled",
            EventType.JOB_RELEASED: "released", EventType.JOB_LEASE_LOST: "lease_lost"}


class WorkerMetrics:
    """The instruments, registered in `registry` (prometheus-client's default one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        job = ("job_type", "queue")
        kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.enqueued = Counter("jobqueue_jobs_enqueued", "Jobs enqueued by this process", job, **kw)
        self.started = Counter("jobqueue_jobs_started", "Attempts started", job, **kw)
        self.finished = Counter("jobqueue_jobs_finished", "Attempts ended, by outcome", (*job, "outcome"), **kw)
        self.duration = Histogram("jobqueue_job_duration_seconds", "How long an attempt ran, by outcome",
                                  (*job, "outcome"), buckets=DURATION_BUCKETS, **kw)
        self.running = Gauge("jobqueue_jobs_running", "Jobs running in this machine's workers", job,
                             multiprocess_mode="livesum", **kw)
        self.recovered = Counter("jobqueue_jobs_recovered", "Jobs of dead workers recovered, by what became of them",
                                 (*job, "outcome"), **kw)
        self.resumptions = Counter("jobqueue_job_resumptions", "Runs of resumable jobs that resumed a checkpoint",
                                   job, **kw)
        self.checkpoint_saves = Counter("jobqueue_checkpoint_saves", "Checkpoints committed by resumable jobs",
                                        job, **kw)
        self.heartbeat = Gauge("jobqueue_worker_heartbeat_timestamp_seconds",
                               "Unix time of the worker's last heartbeat (its leases renewed)",
                               multiprocess_mode="liveall", **kw)
        self.loop_lag = Gauge("jobqueue_worker_loop_lag_seconds",
                              "Seconds since the worker's event loop last ticked, at its last heartbeat",
                              multiprocess_mode="liveall", **kw)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._ends: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: the lookup is the costly part of an increment."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observers(self) -> dict[EventType, Callable[[Event], None]]:
        """What each event type does to the instruments."""
        observers: dict[EventType, Callable[[Event], None]] = {
            EventType.JOB_ENQUEUED: lambda e: self.child(self.enqueued, e.fields["job_type"], e.fields["queue"]).inc(),
            EventType.JOB_STARTED: self._started,
            EventType.JOB_RECOVERED: lambda e: self.child(self.recovered, e.fields["job_type"], e.fields["queue"],
                                                          e.fields["outcome"]).inc(),
            EventType.JOB_RESUMED: lambda e: self.child(self.resumptions, *_job(e)).inc(),
            EventType.CHECKPOINT_SAVED: lambda e: self.child(self.checkpoint_saves, *_job(e)).inc(),
            EventType.WORKER_HEARTBEAT: self._heartbeat,
        }
        for event_type, outcome in OUTCOMES.items():
            observers[event_type] = partial(self._finished, outcome=outcome)
        return observers

    def _started(self, event: Event) -> None:
        labels = _job(event)
        self.child(self.started, *labels).inc()
        self.child(self.running, *labels).inc()

    def _finished(self, event: Event, outcome: str) -> None:
        fields = event.fields
        key = (fields["job_type"], fields["queue"], outcome)
        ends = self._ends.get(key)
        if ends is None:  # the three series an end moves, looked up once per type, queue and outcome
            ends = self._ends[key] = (self.finished.labels(*key), self.duration.labels(*key),
                                      self.running.labels(*key[:2]))
        ends[0].inc()
        ends[1].observe(fields["duration"])
        ends[2].dec()

    def _heartbeat(self, event: Event) -> None:
        self.heartbeat.set(time.time())
        self.loop_lag.set(event.fields["loop_lag"])


def _job(event: Event) -> tuple[str, str]:
    return event.fields["job_type"], event.fields["queue"]


def attach_metrics(bus: EventBus, registry: CollectorRegistry | None = None) -> WorkerMetrics:
    """Feed a new set of instruments from `bus` (a queue's `events`)."""
    metrics = WorkerMetrics(registry)
    for event_type, observer in metrics.observers().items():
        bus.attach(event_type, observer)
    return metrics
