"""The waker's alarms: a job announced for later makes the worker claim when it is due, never before, and an
alarm that went off while the worker was busy is not lost."""

import threading
import time

import anyio
import pytest

from main.services.waker import Waker

pytestmark = pytest.mark.anyio


async def test_a_wait_ends_at_the_alarm_not_at_its_timeout() -> None:
    waker = Waker()
    waker.bind()
    waker.wake_in(0.2)
    await waker.wait(0)  # the wake-up that ends a wait under way, so that the next one ends in time
    started = time.monotonic()
    with anyio.fail_after(5):
        await waker.wait(60)
    assert time.monotonic() - started >= 0.19


async def test_an_alarm_that_went_off_while_the_caller_was_busy_ends_the_next_wait_at_once() -> None:
    waker = Waker()
    waker.bind()
    waker.wake_in(0.05)
    await waker.wait(0)
    time.sleep(0.1)  # busy (a claim) when it goes off
    with anyio.fail_after(1):
        await waker.wait(60)
    with anyio.move_on_after(0.2) as still_waiting:  # that alarm is spent: nothing ends this wait early
        await waker.wait(60)
    assert still_waiting.cancelled_caught


async def test_an_alarm_set_from_another_thread_shortens_a_wait_under_way() -> None:
    waker = Waker()
    waker.bind()
    threading.Timer(0.05, waker.wake_in, [0.1]).start()
    with anyio.fail_after(5):
        await waker.wait(60)  # woken by the new alarm: it would end after it
        await waker.wait(60)  # ends at the alarm


async def test_a_due_time_already_past_wakes_at_once() -> None:
    waker = Waker()
    waker.bind()
    waker.wake_in(-1.0)
    with anyio.fail_after(1):
        await waker.wait(60)
