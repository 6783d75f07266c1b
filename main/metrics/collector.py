"""What only the database knows, read when Prometheus scrapes: per queue, the jobs due and waiting, those
scheduled for later, those running anywhere in the fleet, and how long the oldest due job has waited."""

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import DBAPIError

from main.db.store import JobStore


class QueueCollector(Collector):
    def __init__(self, store: JobStore, now: Callable[[], datetime]) -> None:
        self.store, self.now = store, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("jobqueue_database_up", "1 if the last scrape could read the queues, else 0")
        try:
            now = self.now()
            depths = self.store.queue_depths(now)
        except DBAPIError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        due = GaugeMetricFamily("jobqueue_queue_depth", "Pending jobs that are due now", labels=["queue"])
        age = GaugeMetricFamily("jobqueue_queue_oldest_due_age_seconds",
                                "How long the oldest due job of the queue has waited (0 if none)", labels=["queue"])
        scheduled = GaugeMetricFamily("jobqueue_queue_scheduled", "Pending jobs due later", labels=["queue"])
        running = GaugeMetricFamily("jobqueue_queue_running", "Jobs running on any worker", labels=["queue"])
        for depth in depths:
            due.add_metric([depth.queue], depth.due)
            waited = (now - depth.oldest_due_at).total_seconds() if depth.oldest_due_at else 0.0
            age.add_metric([depth.queue], max(waited, 0.0))
            scheduled.add_metric([depth.queue], depth.scheduled)
            running.add_metric([depth.queue], depth.running)
        yield from (due, age, scheduled, running)
