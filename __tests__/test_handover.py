"""The handover from the producer to the slots: order, wake-ups, close, and a slot cancelled while it waits."""

import anyio
import pytest

from main.services.worker.handover import Handover

pytestmark = pytest.mark.anyio


async def test_items_queued_before_a_slot_asks_are_taken_in_order() -> None:
    handover: Handover[int] = Handover()
    for item in (1, 2, 3):
        handover.put(item)
    assert [await handover.take() for _ in range(3)] == [1, 2, 3]


async def test_a_waiting_slot_is_woken_by_an_item_and_close_ends_the_others() -> None:
    handover: Handover[int] = Handover()
    taken: list[int | None] = []

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(_slot, handover, taken)
        await anyio.wait_all_tasks_blocked()
        handover.put(7)
        await anyio.wait_all_tasks_blocked()
        assert taken == [7]
        handover.close()
    assert sorted(taken, key=str) == [7, None, None]
    with pytest.raises(anyio.ClosedResourceError):
        handover.put(8)


async def test_a_slot_cancelled_while_waiting_does_not_swallow_the_next_item() -> None:
    handover: Handover[int] = Handover()
    taken: list[int | None] = []

    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as doomed:
            doomed.start_soon(handover.take)  # waits first: the one an item would wake, were its wake-up kept
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(_slot, handover, taken)
            await anyio.wait_all_tasks_blocked()
            doomed.cancel_scope.cancel()
        handover.put(1)
        with anyio.fail_after(5):
            while not taken:
                await anyio.sleep(0.01)
    assert taken == [1]


async def _slot(handover: Handover[int], taken: list[int | None]) -> None:
    taken.append(await handover.take())
