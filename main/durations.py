"""Durations as people write them in settings and options: seconds, or a number with a unit."""

import re

# The longest duration anything takes: ~100 years. Longer ones (99999999d) would overflow the time arithmetic of
# the worker and of cleanup long after start-up; they are refused where they are read.
MAX_DURATION = 100 * 365 * 86400.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from ``5``, ``0.5``, ``"250ms"``, ``"10m"``, ``"7d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif match := _DURATION.match(str(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected seconds like 5 or 0.05, or a duration like 250ms, 10m, 7d; got {value!r:.80}")
    if not 0 <= seconds <= MAX_DURATION:  # also refuses NaN
        raise ValueError(f"expected a duration from 0 to 100 years; got {value!r:.80}")
    return seconds
