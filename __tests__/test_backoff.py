"""Backoff delays come from tenacity's wait strategies; these are the real numbers users will see."""

import pytest

from main.base.jobs import Backoff


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Backoff("exponential", base_delay=2, max_delay=3600), [2, 4, 8, 16, 32, 64]),
        (Backoff("exponential", base_delay=1, max_delay=10), [1, 2, 4, 8, 10, 10]),
        (Backoff("linear", base_delay=5, max_delay=3600), [5, 10, 15, 20, 25, 30]),
        (Backoff("linear", base_delay=5, max_delay=12), [5, 10, 12, 12, 12, 12]),
        (Backoff("fixed", base_delay=7, max_delay=3600), [7, 7, 7, 7, 7, 7]),
    ],
)
def test_delays_per_attempt(backoff: Backoff, expected: list[float]) -> None:
    assert [backoff.delay(attempt) for attempt in range(1, 7)] == expected


def test_jitter_adds_a_bounded_random_amount() -> None:
    backoff = Backoff("fixed", base_delay=10, jitter=2)
    delays = [backoff.delay(1) for _ in range(200)]
    assert all(10 <= delay <= 12 for delay in delays)
    assert len(set(delays)) > 1  # actually random, not a constant offset
