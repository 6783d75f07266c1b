"""Flow control enforced inside the claim, across every worker of the fleet: at most `max` running jobs per key
(`@job(concurrency=Limit(...))`), at most `limit` starts per key per window (`@job(rate_limit="100/m")`). Jobs
over a limit stay pending, unclaimed, and do not hold up other keys (main/db/limits.py builds the SQL)."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from main.base.jobs.keys import key_text
from main.durations import parse_duration

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


def _key(job_type: str, key: Callable[[Any], object] | None, payload: Any) -> str:
    """The stored key: the job type, then the key function's value if there is one; hashed whole when long."""
    if key is None:
        return job_type
    return key_text(f"{job_type}:{key_text(key(payload))}")


def _count_problem(label: str, value: object) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
        return f"{label} must be an integer from 1 to 1000000, got {value!r:.80}"
    return None


def _key_problem(owner: str, key: object) -> str | None:
    if key is not None and not callable(key):
        return f"{owner}(key=...) must be a function of the payload, got {key!r:.80}"
    return None


@dataclass(frozen=True)
class Limit:
    """At most `max` jobs of this type (per `key(payload)`, if given) running at once, across all workers."""

    max: int
    key: Callable[[Any], object] | None = None

    def problem(self) -> str | None:
        return _count_problem("Limit(max=...)", self.max) or _key_problem("Limit", self.key)

    def key_for(self, job_type: str, payload: Any) -> str:
        return _key(job_type, self.key, payload)


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` starts of jobs of this type (per `key(payload)`, if given) in any window of `per`, across
    all workers. A retry within the window replaces its job's earlier start (it is counted once)."""

    limit: int
    per: timedelta
    key: Callable[[Any], object] | None = None

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        """"100/m", "5/s", "1000/h", "10/30s": starts per window. ValueError says what is wrong."""
        match = _RATE.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"{text!r:.80} is not a rate: give starts per window such as '100/m', '5/s', '10/30s'")
        window = match.group(2)
        try:
            seconds = parse_duration(window if window[0].isdigit() or window[0] == "." else f"1{window}")
        except ValueError:
            raise ValueError(f"{text!r:.80} is not a rate: its window {window!r} is not a duration such as s, m, h, "
                             "30s or 10m") from None
        return cls(int(match.group(1)), timedelta(seconds=seconds))

    def problem(self) -> str | None:
        if not isinstance(self.per, timedelta) or not timedelta(milliseconds=1) <= self.per <= timedelta(days=366):
            return f"the rate's window must be a timedelta from 1 ms to a year, got {self.per!r:.80}"
        return _count_problem("the rate's limit", self.limit) or _key_problem("RateLimit", self.key)

    def key_for(self, job_type: str, payload: Any) -> str:
        return _key(job_type, self.key, payload)
