"""The jobs this worker has claimed and not yet ended, by id: those running in its slots (at most
JOBQUEUE_CONCURRENCY) and those claimed ahead, waiting for a slot."""

from collections.abc import Iterator

from main.services.runner import RunningJob, StopReason


class Executions:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._running: dict[int, RunningJob] = {}
        self.abandoned = 0  # jobs whose `def perform` was still running when the worker had to go
        self.ended = 0  # jobs removed so far: how fast this worker gets through its jobs

    def __len__(self) -> int:
        return len(self._running)

    def __iter__(self) -> Iterator[RunningJob]:
        return iter(list(self._running.values()))

    def snapshot(self) -> dict[int, RunningJob]:
        return dict(self._running)

    def add(self, running: RunningJob) -> None:
        self._running[running.job.id] = running

    def remove(self, running: RunningJob) -> None:
        """Forget this execution, not a newer one of the same job (a paused job this worker claimed again)."""
        if self._running.get(running.job.id) is running:
            del self._running[running.job.id]
            self.ended += 1

    def stop(self, job_id: int, reason: StopReason) -> None:
        if job_id in self._running:
            self._running[job_id].stop(reason)

    def request_stop(self, reason: str) -> None:
        """Ask every running job to stop at its next item boundary (resumable jobs); others run on."""
        for running in self:
            running.signal.request(reason)

    def stop_all(self, reason: StopReason) -> None:
        for running in self:
            running.stop(reason)

    def abandon(self) -> list[RunningJob]:
        """Stop waiting for the threads of the jobs still here after they were stopped: a `def perform` that
        does not return cannot be interrupted, and must not keep the worker from exiting."""
        stuck = list(self)
        for running in stuck:
            if running.thread_released is not None:
                running.thread_released.set()
        self.abandoned += len(stuck)
        return stuck
