"""`jobqueue worker --processes N`: N worker processes on one machine, kept alive by one parent.

A child that dies is restarted after a backoff; one that keeps dying at start-up (three times in a row within
START_GRACE seconds of being started) makes the supervisor give up loudly, since restarting cannot fix what
kills it (a bad setting, a database that refuses). SIGTERM and SIGINT are forwarded to every child, which
stops gracefully (a second signal interrupts, as for a single worker). Children run in sessions of their own,
so a Ctrl-C at the terminal reaches them once, through the supervisor. A child that exits 0 (a `--burst`
worker with nothing left to do) is done and not restarted.
"""

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence

import anyio
from anyio.abc import Process
from structlog.typing import FilteringBoundLogger

START_GRACE = 5.0  # seconds: a child that dies sooner failed at start-up
MAX_START_FAILURES = 3  # in a row, for one slot: then the supervisor gives up
_FIRST_RESTART_DELAY, _MAX_RESTART_DELAY = 0.2, 30.0


class Supervisor:
    def __init__(self, command: Sequence[str], processes: int, log: FilteringBoundLogger, *,
                 env: Mapping[str, str] | None = None, on_exit: Callable[[int], None] | None = None) -> None:
        """`env`: variables added to the children's environment; `on_exit(pid)`: told when a child has exited."""
        self.command, self.processes, self.log = list(command), processes, log
        self.env, self.on_exit = {**os.environ, **env} if env else None, on_exit
        self._children: dict[int, Process] = {}
        self._started: dict[int, float] = {}  # pid -> Unix time it was started
        self._stopping = False
        self._stop_requested: anyio.Event | None = None
        self.failed = False  # gave up, or a child did not stop cleanly

    async def run(self) -> int:
        """Run until every child has finished (stopped by a signal, or done); the exit code for the CLI."""
        self._stop_requested = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._forward_signals)
            async with anyio.create_task_group() as slots:
                for slot in range(self.processes):
                    slots.start_soon(self._keep_alive, slot)
            tg.cancel_scope.cancel()  # every slot has finished: stop forwarding
        return 1 if self.failed else 0

    async def _keep_alive(self, slot: int) -> None:
        failures = 0  # start-up failures in a row
        while not self._stopping:
            started = time.monotonic()
            process = await anyio.open_process(self.command, stdin=None, stdout=None, stderr=None,
                                               start_new_session=True, env=self.env)
            self._children[slot], self._started[process.pid] = process, time.time()
            if self._stopping:  # the signal came while this child was starting
                process.send_signal(signal.SIGTERM)
            self.log.info("worker_process_started", slot=slot, pid=process.pid)
            code = await process.wait()
            del self._children[slot], self._started[process.pid]
            if self.on_exit is not None:
                self.on_exit(process.pid)
            if self._stopping:
                # Killed by the forwarded signal itself: it was still starting (no handler yet), so it had no job.
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    self.failed = True
                    self.log.error("worker_process_did_not_stop_cleanly", slot=slot, pid=process.pid, exit_code=code)
                return
            if code == 0:
                self.log.info("worker_process_finished", slot=slot, pid=process.pid)
                return
            failures = failures + 1 if time.monotonic() - started < START_GRACE else 1
            if failures >= MAX_START_FAILURES:
                self.failed = True
                self.log.error("worker_process_keeps_dying", slot=slot, exit_code=code, failures=failures,
                               note="giving up: see the child's own error above; the other workers are stopped")
                self._stop_all(signal.SIGTERM)
                return
            delay = min(_FIRST_RESTART_DELAY * 2 ** (failures - 1), _MAX_RESTART_DELAY)
            self.log.error("worker_process_died", slot=slot, pid=process.pid, exit_code=code, restart_in=delay)
            assert self._stop_requested is not None
            with anyio.move_on_after(delay):  # a stop ends the wait
                await self._stop_requested.wait()

    def children(self) -> dict[int, float]:
        """The live worker processes: pid -> Unix time started."""
        return dict(self._started)

    async def _forward_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self.log.info("signal_received", signal=signal.Signals(signum).name, children=len(self._children))
                self._stop_all(signum)

    def _stop_all(self, signum: int) -> None:
        self._stopping = True
        if self._stop_requested is not None:
            self._stop_requested.set()
        for process in list(self._children.values()):
            if process.returncode is None:
                process.send_signal(signal.Signals(signum))
