"""`jobqueue worker` as a real child process: started, signalled, waited for. Used by the demo and the tests."""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from signal import SIGTERM
from types import TracebackType

from main.settings import Settings


class WorkerProcess:
    """A worker process with `env` added to this one's environment. Its output goes to `output` if given.
    As a context manager, it gets SIGTERM on exit (unless it already stopped)."""

    def __init__(self, env: Mapping[str, str], *args: str, output: Path | None = None,
                 cwd: Path | None = None) -> None:
        self.output = output
        self._log = output.open("w") if output else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "main.cli", "worker", *args], cwd=cwd, env={**os.environ, **env},
            stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
        )
        self.exit_code: int | None = None

    @classmethod
    def for_settings(cls, settings: Settings, *, log_level: str = "warning") -> "WorkerProcess":
        """A worker on the same database and intervals as `settings`, running the application's jobs."""
        return cls({
            "JOBQUEUE_DATABASE_URL": settings.database_url,
            "JOBQUEUE_POLL_INTERVAL": str(settings.poll_interval),
            "JOBQUEUE_LEASE_SECONDS": str(settings.lease_seconds),
            "JOBQUEUE_JOBS_MODULE": "main.jobs",
            "JOBQUEUE_LOG_LEVEL": log_level,
            "JOBQUEUE_LOG_FORMAT": "console",
        })

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        try:
            self.exit_code = self.process.wait(timeout=timeout)
            return self.exit_code
        finally:
            if self._log:
                self._log.close()

    def stop(self, signum: int = SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.wait(timeout)

    def logs(self) -> str:
        return self.output.read_text() if self.output else ""

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
