"""`jobqueue worker` as a real child process, for the demo: started, signalled, waited for."""

import os
import signal
import subprocess
import sys
from types import TracebackType

from main.settings import Settings


class WorkerProcess:
    """Use as a context manager: the worker gets SIGTERM on exit (unless it already stopped)."""

    def __init__(self, settings: Settings, *, log_level: str = "warning") -> None:
        env = {
            **os.environ,
            "JOBQUEUE_DATABASE_URL": settings.database_url,
            "JOBQUEUE_POLL_INTERVAL": str(settings.poll_interval),
            "JOBQUEUE_LEASE_SECONDS": str(settings.lease_seconds),
            "JOBQUEUE_JOBS_MODULE": "main.jobs",
            "JOBQUEUE_LOG_LEVEL": log_level,
            "JOBQUEUE_LOG_FORMAT": "console",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "main.cli", "worker"], env=env)
        self.exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        self.exit_code = self.process.wait(timeout=timeout)
        return self.exit_code

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
