"""perform_now: inline, validated, with the job's timeout, nothing written."""

import pytest

from __tests__.support.jobs import NoopJob, SleepJob, SyncJob, TimeoutJob
from main.errors import JobTimeoutError, PayloadValidationError

pytestmark = pytest.mark.anyio


async def test_runs_inline_and_returns_the_result() -> None:
    assert await NoopJob.perform_now({"n": 41}) == 41
    assert await SleepJob.perform_now({"seconds": 0}) == "slept"


async def test_validates_the_payload() -> None:
    with pytest.raises(PayloadValidationError, match="NoopJob"):
        await NoopJob.perform_now({"n": []})


async def test_enforces_the_timeout() -> None:
    with pytest.raises(JobTimeoutError, match="'TimeoutJob' timed out after 0.2s"):
        await TimeoutJob.perform_now({"seconds": 5})


async def test_a_sync_perform_runs_in_a_thread() -> None:
    assert await SyncJob.perform_now({"n": 21}) == 42


def test_sync_twin_outside_an_event_loop() -> None:
    assert NoopJob.perform_now_sync({"n": 3}) == 3
