"""/healthz and /readyz, answered from what the workers publish.

Healthy: each worker process beat within `stale_after` seconds (its leases are being renewed) and its event loop
had ticked shortly before that beat (no job blocks it). Read from the heartbeat gauges, so that a supervisor
answers for all its worker processes exactly as a single worker answers for itself. Ready: the database
answers and its jobqueue tables are at this code's revision.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError

from main.db import schema
from main.db.engine import Database, describe_database_error
from main.errors import JobQueueError

HEARTBEAT = "jobqueue_worker_heartbeat_timestamp_seconds"
LOOP_LAG = "jobqueue_worker_loop_lag_seconds"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "failing", "problems": self.problems, **self.details}


def worker_health(registry: CollectorRegistry, workers: Mapping[str, float], *, stale_after: float,
                  now: float | None = None) -> Verdict:
    """`workers`: the processes expected to report (by pid label, "" for this process), each with the Unix time it
    started; one that has not reported yet is healthy for its first `stale_after` seconds."""
    now = time.time() if now is None else now
    beats, lags = _by_pid(registry, HEARTBEAT), _by_pid(registry, LOOP_LAG)
    problems: list[str] = []
    report: dict[str, dict[str, float | None]] = {}
    if not workers:
        problems.append("no worker process is running")
    for pid, started in workers.items():
        name = f"worker {pid}" if pid else "the worker"
        beat = beats.get(pid)
        if beat is None:
            age = now - started
            report[pid or "self"] = {"heartbeat_age": None}
            if age > stale_after:
                problems.append(f"{name} has not beaten in the {age:.1f}s since it started")
            continue
        age, lag = now - beat, lags.get(pid, 0.0)
        report[pid or "self"] = {"heartbeat_age": round(age, 3), "loop_lag": round(lag, 3)}
        if age > stale_after:
            problems.append(f"{name} last renewed its leases {age:.1f}s ago (more than {stale_after:g}s)")
        if lag > stale_after:
            problems.append(f"{name}'s event loop was blocked for {lag:.1f}s (a job blocks it)")
    return Verdict(not problems, problems, {"workers": report})


def _by_pid(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {sample.labels.get("pid", ""): sample.value
            for family in registry.collect() if family.name == name for sample in family.samples}


def ask_probe(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """What a probe URL answers (its JSON document); a worker that does not answer is a failing verdict."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:  # 503: the verdict is in the body
        with error:
            return json.loads(error.read())  # type: ignore[no-any-return]
    except (OSError, ValueError) as error:
        return Verdict(False, [f"nothing answers at {url} ({error}): is the worker running with "
                                f"--metrics-port?"]).document()


def readiness(database: Database) -> Verdict:
    try:
        found = schema.current(database).revision
    except DBAPIError as exc:
        return Verdict(False, [f"the database does not answer: {describe_database_error(exc)}"])
    except JobQueueError as exc:  # tables this jobqueue cannot use
        return Verdict(False, [str(exc)])
    if found is None:
        return Verdict(False, ["the database has no jobqueue tables yet: a worker creates them when it starts, "
                               "or run `jobqueue db upgrade`"])
    if found != schema.head():
        return Verdict(False, [f"the jobqueue tables are at revision {found}, this code needs "
                               f"{schema.head()}: run `jobqueue db upgrade`"])
    return Verdict(True, details={"revision": found})
