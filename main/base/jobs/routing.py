"""What a queue name and a priority may be. Checked where a job is defined (@job) and again where one is
enqueued, so that no row a worker would trip over is ever written."""

import re

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
# The columns are 32-bit integers on every engine.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def queue_problem(what: str, queue: object) -> str | None:
    """Why `queue` cannot name a queue, as a sentence starting with `what`; None if it can."""
    if isinstance(queue, str) and QUEUE_NAME.fullmatch(queue):
        return None
    return f"{what} must be 1-100 letters, digits or _.:- characters, got {queue!r:.120}"


def integer_problem(what: str, value: object, minimum: int = INT32_MIN) -> str | None:
    """Why `value` cannot be stored in an integer column, as a sentence starting with `what`; None if it can."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= INT32_MAX:
        return None
    return f"{what} must be an integer from {minimum} to {INT32_MAX}, got {value!r:.120}"
