"""Enqueue fuzzed (issue 9): arbitrary JSON and arguments through the API and the CLI. Every outcome is a stored
job that runs and gets back exactly the payload given, or a JobQueueError with nothing written; never another
exception."""

import json
import math
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from __tests__.support.jobs import EchoJob
from main.base.jobs import JobRequest
from main.db.entities import JobStatus
from main.errors import JobQueueError
from main.services.job_queue import JobQueue


def json_like(*leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), *leaves),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=30,
    )


json_values = json_like(st.binary(max_size=8))  # what Python code may pass, bytes included
arguments = st.fixed_dictionaries({}, optional={
    "queue": st.one_of(st.text(max_size=120), st.integers(), st.none()),
    "priority": st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.booleans(), st.none()),
    "delay": st.one_of(st.floats(), st.integers(min_value=-(2**70), max_value=2**70),
                       st.timedeltas(), st.text(max_size=5), st.none()),
    "run_at": st.one_of(st.datetimes(timezones=st.timezones()), st.datetimes(), st.none()),
})
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _rows(queue: JobQueue) -> int:
    return sum(n for _, _, n in queue.store.counts())


REFUSED = object()


def _as_stored(data: Any) -> Any:
    """What the job should get back: bytes come back as their UTF-8 text; ValueError where JSON cannot hold
    `data` (NaN, infinities, bytes that are not UTF-8), which enqueue must refuse."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ValueError("not JSON")
    if isinstance(data, bytes):
        return data.decode()
    if isinstance(data, list):
        return [_as_stored(item) for item in data]
    if isinstance(data, dict):
        return {key: _as_stored(value) for key, value in data.items()}
    return data


@FUZZ
@given(data=json_values, extra=arguments)
@example(data=None, extra={"delay": 1.0})  # due in a second: not claimable now (the test once ran it anyway)
def test_enqueue_stores_a_runnable_job_or_raises_a_jobqueue_error(
    queue: JobQueue, tmp_path: Path, data: Any, extra: dict[str, Any],
) -> None:
    queue.store.delete_jobs_of_types(["EchoJob"])
    out = tmp_path / "echo"
    out.unlink(missing_ok=True)
    try:
        expected = _as_stored(data)
    except ValueError:
        expected = REFUSED
    try:
        [job_id] = queue.enqueue_many_sync([JobRequest(EchoJob, {"data": data, "path": str(out)}, **extra)])
    except JobQueueError:
        assert _rows(queue) == 0
        return
    assert expected is not REFUSED, f"stored what JSON cannot hold: {data!r}"
    if queue.store.get(job_id).run_at <= queue.now():  # due (by the queue's clock, the server's): it runs now
        job = anyio.run(queue.work_one, job_id)
        assert job is not None and job.status == JobStatus.COMPLETED, job and job.last_error
        assert json.loads(out.read_text()) == expected


@FUZZ
@given(payload=st.one_of(st.text(max_size=40), json_like().map(lambda value: json.dumps({"data": value}))),
       delay=st.one_of(st.none(), st.text(max_size=8), st.floats().map(str)))
def test_the_cli_enqueue_never_shows_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], queue: JobQueue, database_url: str,
    payload: str, delay: str | None,
) -> None:
    from __tests__.test_cli_hardening import cli

    queue.store.delete_jobs_of_types(["EchoJob"])
    args = ["enqueue", "EchoJob", "--payload", payload, *(["--in", delay] if delay is not None else [])]
    code, out, err = cli(monkeypatch, capsys, database_url, *args)
    assert "Traceback" not in err
    if code == 0:
        assert "enqueued EchoJob" in out and _rows(queue) == 1
    else:
        assert code in (1, 2) and _rows(queue) == 0  # 2: a usage error (click), e.g. an option-like value
