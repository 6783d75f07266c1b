"""`jobqueue demo ...` as a user runs it: real processes, a real SQLite file, real signals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from __tests__.conftest import ROOT
from __tests__.test_cli import run_cli
from main.base.jobs.continuation import Checkpoint
from main.db.entities.job import JobStatus
from main.jobs import JOBS
from main.services.job_queue import JobQueue
from main.settings import Settings

pytestmark = pytest.mark.slow


def demo(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(url, "demo", *args, JOBQUEUE_JOBS_MODULE="main.jobs", **env)


def test_verify_seed_run_checkpoint_proof_clean(sqlite_url: str) -> None:
    before = demo(sqlite_url, "verify")
    assert before.returncode == 1 and "demo tables" in before.stdout
    seeded = demo(sqlite_url, "seed", "quick", "--all-pending")
    assert seeded.returncode == 0 and "100" in seeded.stdout
    assert demo(sqlite_url, "verify").returncode == 0

    ran = demo(sqlite_url, "run", "generate-reports", "--item-delay", "0")
    assert ran.returncode == 0, ran.stderr
    shown = json.loads(demo(sqlite_url, "checkpoint", "generate-reports", "--json").stdout)
    assert shown["status"] == "completed" and shown["summary"]["done"] == 100
    assert shown["summary"]["step"] == "build_reports"
    assert "steps" in demo(sqlite_url, "checkpoint", str(shown["id"])).stdout

    proofs = {p["job_type"]: p for p in json.loads(demo(sqlite_url, "proof", "--json").stdout)}
    assert (proofs["GenerateReportsJob"]["processed"], proofs["GenerateReportsJob"]["duplicates"]) == (100, 0)

    reset = demo(sqlite_url, "seed", "--reset-orders")
    assert "100 orders reset to pending" in reset.stdout
    unknown = demo(sqlite_url, "run", "make-coffee")
    assert unknown.returncode == 1 and "no demo job named 'make-coffee'" in unknown.stderr

    assert demo(sqlite_url, "clean").returncode == 0
    assert demo(sqlite_url, "verify").returncode == 1


def test_compare_both_styles(sqlite_url: str) -> None:
    assert demo(sqlite_url, "seed", "quick", "--all-pending").returncode == 0
    result = demo(sqlite_url, "compare", "--json")
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    assert [run["style"] for run in runs] == ["step", "enumerator"] * 3
    assert all(run["duplicates"] == 0 and run["resumptions"] == 2 for run in runs)
    assert [run["items"] for run in runs] == [100, 100, 100, 100, 10, 10]
    # The default policy writes a checkpoint a second (and at each interruption and step end), not per item.
    assert all(run["resumptions"] < run["checkpoints"] < run["items"] for run in runs)
    table = demo(sqlite_url, "compare")
    assert "overhead/item" in table.stdout


def test_interrupt_sends_sigterm_at_an_item(sqlite_url: str, start_worker, tmp_path: Path) -> None:
    assert demo(sqlite_url, "seed", "quick", "--all-pending").returncode == 0
    enqueued = demo(sqlite_url, "run", "process-orders", "--item-delay", "0.05", "--enqueue-only")
    job_id = int(enqueued.stdout.split("as job ")[1].split()[0])
    worker = start_worker(sqlite_url, JOBQUEUE_JOBS_MODULE="main.jobs")
    result = demo(sqlite_url, "interrupt", "--at-item", "10")
    assert result.returncode == 0 and f"sent SIGTERM to worker pid {worker.process.pid}" in result.stdout
    assert worker.wait() == 0
    queue = JobQueue(Settings.load(database_url=sqlite_url), jobs=JOBS)
    row = queue.store.get(job_id)
    state = Checkpoint.model_validate(row.checkpoint)
    assert row.status == JobStatus.PENDING and state.steps["process_orders"].done >= 10
    assert state.interrupted_by == "shutdown"
    queue.close()
    assert run_cli(sqlite_url, "jobs", "cancel", str(job_id)).returncode == 0  # nothing left to wait for
    monitor = demo(sqlite_url, "monitor", "--until-idle", "--interval", "0.1")
    assert monitor.returncode == 0
    assert "ProcessOrdersJob" in monitor.stdout and "orders processed" in monitor.stdout


def test_the_one_shot_demo(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    env.pop("JOBQUEUE_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "main.cli", "demo"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "got SIGTERM" in result.stdout and "got SIGKILL" in result.stdout
    assert result.stdout.count("each order exactly once") == 2
    assert (tmp_path / "jobqueue-demo.db").exists()
