"""PostgreSQL behind PgBouncer in transaction mode, a pooler of our own in front of the shared server: with
JOBQUEUE_TRANSACTION_POOLER a worker prepares no statements and polls instead of LISTENing (and says so at
start-up); without it, a statement prepared on one server session and run on another stops it."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from __tests__.conftest import wait_for
from __tests__.support.jobs import JOBS, SleepJob
from main.base.jobs import JobRequest
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue
from main.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def pgbouncer_url(postgres_url: str) -> Iterator[str]:
    """The test's database through PgBouncer in transaction mode. Server sessions are handed out round robin, two
    at least, so that consecutive transactions of one client land on different sessions, as under load."""
    binary = shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer",) if os.path.exists(p)), None)
    if binary is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PgBouncer tests: {reason}", pytrace=False)
        pytest.skip(reason)
    server = make_url(postgres_url)
    home = Path(tempfile.mkdtemp(prefix="jobqueue-pgbouncer-"))  # not tmp_path: the postgres user must read it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (home / "userlist.txt").write_text(f'"{server.username}" ""\n')
    (home / "pgbouncer.ini").write_text(f"""[databases]
* = host={server.host} port={server.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home / "userlist.txt"}
pool_mode = transaction
server_round_robin = 1
min_pool_size = 2
""")
    as_user = ["--user", "postgres"] if os.geteuid() == 0 else []  # it refuses to run as root
    if as_user:
        shutil.chown(home, "postgres")
        for path in home.iterdir():
            shutil.chown(path, "postgres")
    pooler = subprocess.Popen([binary, *as_user, str(home / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _accepts(port), timeout=10)
        yield server.set(port=port).render_as_string(hide_password=False)
    finally:
        pooler.terminate()
        pooler.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _open_server_sessions(pgbouncer_url: str, count: int) -> None:
    """Make PgBouncer open `count` server sessions (clients inside a transaction at once each need one); they stay
    in its pool, handed out round robin."""
    url = make_url(pgbouncer_url).set(drivername="postgresql").render_as_string(hide_password=False)
    clients = [psycopg.connect(url) for _ in range(count)]
    try:
        pids = {client.execute("SELECT pg_backend_pid()").fetchone()[0] for client in clients}  # type: ignore[index]
        assert len(pids) == count
    finally:
        for client in clients:
            client.close()


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_worker_through_a_transaction_pooler_runs_every_job_once_by_polling(
    pgbouncer_url: str, start_worker, tmp_path: Path,
) -> None:
    queue = JobQueue(Settings.load(database_url=pgbouncer_url, transaction_pooler=True), jobs=JOBS)
    trace = tmp_path / "trace"
    ids = queue.enqueue_many_sync([JobRequest(SleepJob, {"seconds": 0.001, "path": str(trace)})] * 300)
    worker = start_worker(pgbouncer_url, "--concurrency", "1", JOBQUEUE_TRANSACTION_POOLER="true")  # as the control
    wait_for(lambda: queue.get_status_sync().counts_by_status["completed"] == len(ids), timeout=60)
    later = queue.enqueue_many_sync([JobRequest(SleepJob, {"seconds": 0.001})])  # found by polling
    wait_for(lambda: queue.store.get(later[0]).status == JobStatus.COMPLETED, timeout=10)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    starts = Counter(line.split()[1] for line in trace.read_text().splitlines() if line.startswith("started"))
    assert sorted(map(int, starts)) == ids and set(starts.values()) == {1}
    assert "listen_disabled" in worker.logs() and "transaction mode" in worker.logs()
    queue.close()


def test_without_the_setting_a_worker_through_a_transaction_pooler_stops_on_a_prepared_statement(
    pgbouncer_url: str, start_worker,
) -> None:
    """The control: what JOBQUEUE_TRANSACTION_POOLER is for."""
    queue = JobQueue(Settings.load(database_url=pgbouncer_url, transaction_pooler=True), jobs=JOBS)
    queue.enqueue_many_sync([JobRequest(SleepJob, {"seconds": 0.001})] * 2000)  # it stops long before the end
    _open_server_sessions(pgbouncer_url, 3)  # else a short burst may find the pooler with one session, and pass
    worker = start_worker(pgbouncer_url, "--concurrency", "1", "--burst")  # a claim per job: many statements
    assert worker.wait(timeout=60) != 0
    # A statement prepared on one server session, used on another: "prepared statement _pg3_0 does not exist" (or
    # "already exists"), or, when a same-named one there takes other parameters, the driver's bytes misread.
    assert re.search(r"the worker stops: (prepared statement|bind message|invalid byte sequence)", worker.logs())
    queue.close()
