"""A jobs module with a schedule: RecordJob every minute, recording to $SCHEDULE_TEST_PATH. Used by the worker
processes of the cron tests (a module of its own, so that no other test's workers enqueue it)."""

import os

from __tests__.support.jobs import RecordJob
from main.base.jobs import Schedule

JOBS = [RecordJob]
SCHEDULES = [Schedule(RecordJob, "* * * * *", payload={"path": os.environ.get("SCHEDULE_TEST_PATH", "/dev/null")},
                      name="every-minute")]
