"""What `--metrics-port` serves, for one worker process or for a supervisor and all its worker processes."""

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.applications import Starlette

from main.metrics.collector import QueueCollector
from main.metrics.health import readiness, worker_health
from main.metrics.instruments import attach_metrics
from main.services.job_queue import JobQueue
from main.services.supervisor import Supervisor
from main.services.worker.heartbeat import LOOP_BLOCKED_AFTER
from main.settings import Settings
from main.web.probes import probe_app
from main.web.server import serving

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's: where each process writes its values


def stale_after(settings: Settings) -> float:
    """Seconds without a heartbeat (or with the loop blocked) after which a worker is unhealthy: three missed
    beats, at least LOOP_BLOCKED_AFTER, and never past the lease (its jobs are taken over then)."""
    return min(settings.lease_seconds, max(3 * settings.effective_heartbeat_interval, LOOP_BLOCKED_AFTER))


def worker_app(queue: JobQueue) -> Starlette:
    """Metrics and probes of this process's worker (its instruments attached to the queue's events here)."""
    registry = CollectorRegistry()
    attach_metrics(queue.events, registry)
    registry.register(QueueCollector(queue.store, queue.now))
    started = {"": time.time()}
    return probe_app(registry, lambda: worker_health(registry, started, stale_after=stale_after(queue.settings)),
                     lambda: readiness(queue.database))


def supervisor_app(queue: JobQueue, directory: Path, children: Callable[[], Mapping[int, float]]) -> Starlette:
    """Metrics of every worker process that writes to `directory` (summed), probes of the live `children`
    (pid -> Unix time started). `queue` is the supervisor's own, for the database's view."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    registry.register(QueueCollector(queue.store, queue.now))

    def health() -> object:
        workers = {str(pid): started for pid, started in children().items()}
        return worker_health(registry, workers, stale_after=stale_after(queue.settings))

    return probe_app(registry, health, lambda: readiness(queue.database))  # type: ignore[arg-type]


def child_of_a_supervisor() -> bool:
    """A worker process whose supervisor collects its metrics (it set PROMETHEUS_MULTIPROC_DIR)."""
    return bool(os.environ.get(MULTIPROC_DIR))


async def serve_worker(queue: JobQueue, *, burst: bool, host: str, port: int) -> None:
    """`queue.serve()`, with its metrics and probes on host:port for as long as it runs."""
    async with serving(worker_app(queue), host, port) as bound:
        queue.log.info("metrics_serving", url=f"http://{host}:{bound}/metrics")
        await queue.serve(burst=burst)


async def supervise(queue: JobQueue, command: Sequence[str], processes: int, *, host: str, port: int) -> int:
    """Run `processes` worker processes under a supervisor that serves all their metrics on host:port; each
    writes its values to a directory of this run's, which is removed at the end."""
    directory = Path(tempfile.mkdtemp(prefix="jobqueue-metrics-"))
    try:
        supervisor = Supervisor(command, processes, queue.log, env={MULTIPROC_DIR: str(directory)},
                                on_exit=lambda pid: mark_process_dead(pid, str(directory)))
        async with serving(supervisor_app(queue, directory, supervisor.children), host, port) as bound:
            queue.log.info("metrics_serving", url=f"http://{host}:{bound}/metrics", processes=processes)
            return await supervisor.run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
