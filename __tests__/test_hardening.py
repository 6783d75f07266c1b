"""Bad input and bad rows (issue 9): every enqueue argument is checked before anything is written, every
mistake is a JobQueueError naming what is wrong, and a row a worker cannot read fails alone."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from __tests__.support.jobs import RAISABLE, EchoJob, NoopJob, RaiseJob, SyncRaiseJob
from main.db.entities import JobStatus
from main.errors import JobNotFoundError, JobQueueError, JobRequestError, PayloadValidationError, SchedulingError
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


def count_rows(queue: JobQueue) -> int:
    return sum(n for _, _, n in queue.store.counts())


def nested(depth: int) -> dict[str, Any]:
    root = node = {}
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


@pytest.mark.parametrize(("arguments", "error", "message"), [
    ({"priority": "high"}, JobRequestError, "priority must be an integer from -2147483648 to 2147483647, got 'high'"),
    ({"priority": 2**70}, JobRequestError, "priority must be an integer"),
    ({"priority": True}, JobRequestError, "priority must be an integer"),
    ({"queue": ""}, JobRequestError, "queue must be 1-100 letters"),
    ({"queue": "x" * 101}, JobRequestError, "queue must be 1-100 letters"),
    ({"queue": "reports\n"}, JobRequestError, "queue must be 1-100 letters"),
    ({"queue": "a b"}, JobRequestError, "queue must be 1-100 letters"),
    ({"delay": float("nan")}, SchedulingError, "delay must be a finite number of seconds, got nan"),
    ({"delay": float("inf")}, SchedulingError, "delay must be a finite number of seconds"),
    ({"delay": 1e12}, SchedulingError, "is too long: the run time would fall after the year 9999"),
    ({"delay": timedelta.max}, SchedulingError, "is too long"),
    ({"delay": -1}, SchedulingError, "delay must not be negative"),
    ({"delay": "5"}, SchedulingError, "delay must be a number of seconds or a timedelta, got '5'"),
    ({"run_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5)))}, SchedulingError,
     "is out of range: in UTC it must fall between the years 1 and 9999"),
    ({"run_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}, SchedulingError, "is out of range"),
    ({"run_at": "2030-01-01"}, SchedulingError, "run time must be a datetime"),
])
async def test_bad_enqueue_arguments_raise_and_write_nothing(
    queue: JobQueue, arguments: dict[str, Any], error: type[JobQueueError], message: str,
) -> None:
    from main.base.jobs import JobRequest

    with pytest.raises(error, match=message.replace("(", "\\(").replace(")", "\\)")):
        await queue.enqueue_many([JobRequest(NoopJob, {"n": 1}, **arguments)])
    assert count_rows(queue) == 0


@pytest.mark.parametrize(("data", "message"), [
    (nested(300), "cannot be stored as JSON: Maximum serialization depth exceeded"),
    (b"\xff\xfe", "cannot be stored as JSON: invalid utf-8 sequence"),
    (object(), "cannot be stored as JSON: Unable to serialize unknown type"),
    (float("nan"), "it holds NaN or an infinity, which JSON cannot represent"),
    ([1.0, {"x": float("-inf")}], "it holds NaN or an infinity"),
])
async def test_payloads_json_cannot_hold_faithfully_are_refused(queue: JobQueue, data: Any, message: str) -> None:
    with pytest.raises(PayloadValidationError, match=message):
        await EchoJob.perform_later({"data": data})
    with pytest.raises(PayloadValidationError, match=message):
        await EchoJob.perform_in(5, {"data": data})
    assert count_rows(queue) == 0


async def test_bad_job_ids_and_limits_are_errors_of_their_own(queue: JobQueue) -> None:
    with pytest.raises(JobRequestError, match="a job id must be an integer, got 'abc'"):
        await queue.cancel_job("abc")  # type: ignore[arg-type]
    with pytest.raises(JobRequestError, match="a job id must be an integer"):
        queue.retry_job_sync(1.5)  # type: ignore[arg-type]
    for job_id in (2**64, 2**70, -1, 0):
        with pytest.raises(JobNotFoundError, match=f"no job with id {job_id}"):
            await queue.get_job(job_id)
    with pytest.raises(JobRequestError, match="jobs to list must be a positive integer, got 18446744073709551616"):
        queue.store.list_jobs(limit=2**64)


def _insert_raw(queue: JobQueue, rows: list[dict[str, Any]]) -> list[int]:
    """Rows as a tool that skips jobqueue's validation would write them."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    ids = []
    with queue.database.engine.begin() as connection:
        for row in rows:
            values = {"type": "NoopJob", "payload": "{}", "queue": "default", "priority": 0, **row}
            result = connection.execute(text(
                "INSERT INTO jobs (type, payload, queue, priority, status, attempts, max_retries, run_at, "
                "created_at, updated_at, cancel_requested) VALUES (:type, :payload, :queue, :priority, 'pending', 0, "
                "3, :now, :now, :now, false) RETURNING id"), {**values, "now": now})
            ids.append(result.scalar_one())
    return ids


async def test_a_row_the_worker_cannot_read_fails_alone(queue: JobQueue) -> None:
    """Before: a poison row crashed every worker that claimed it, after the claim committed, and the jobs claimed
    beside it stayed running forever."""
    queue.store.ensure_schema()
    bad = [{"payload": "[1, 2]"}, {"payload": '"just a string"'}]
    if queue.database.dialect.name == "sqlite":  # PostgreSQL refuses these itself
        bad += [{"priority": "high"}, {"payload": "not json {"}]
    good = await NoopJob.perform_bulk([{"n": n} for n in range(5)])
    bad_ids = _insert_raw(queue, bad)
    more_good = await NoopJob.perform_bulk([{"n": n} for n in range(5)])
    await queue.run(burst=True)
    for job_id in good + more_good:
        assert queue.store.get(job_id).status == JobStatus.COMPLETED
    for job_id, stored in zip(bad_ids, bad, strict=True):
        row = queue.store.get(job_id)  # people-facing reads show what is stored, even what is not JSON
        assert (row.status, row.attempts) == (JobStatus.FAILED, 1)
        assert row.last_error.startswith("the stored job cannot be read: ")
        if stored.get("payload") == "not json {":
            assert row.payload == "not json {"


async def test_stored_payloads_come_back_as_given(queue: JobQueue, tmp_path) -> None:
    out = tmp_path / "echo"
    data = {"text": "ü\u2028'\";--\x00", "n": [1, -2.5, 1e300, None, True], "deep": nested(200)}
    await EchoJob.perform_later({"data": data, "path": str(out)})
    await queue.run(burst=True)
    assert json.loads(out.read_text()) == data


async def test_a_job_raising_any_base_exception_fails_and_the_worker_goes_on(queue: JobQueue) -> None:
    """Before: SystemExit or KeyboardInterrupt from a job killed the worker, abandoning the jobs beside it."""
    before = await NoopJob.perform_bulk([{"n": n} for n in range(3)])
    raising = {(job_class, name): await job_class.perform_later({"exception": name})
               for job_class in (RaiseJob, SyncRaiseJob) for name in RAISABLE}
    after = await NoopJob.perform_bulk([{"n": n} for n in range(3)])
    await queue.run(burst=True)
    for (_, name), job_id in raising.items():
        row = queue.store.get(job_id)
        assert (row.status, row.attempts, row.last_error) == (JobStatus.FAILED, 1, f"{name}: raised by the job")
    assert all(queue.store.get(job_id).status == JobStatus.COMPLETED for job_id in before + after)
