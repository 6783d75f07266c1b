"""How many jobs a worker claims: its free slots, and more while its jobs are faster than a claim.

A claim is a round trip (~2 ms for 100 jobs on PostgreSQL), a no-op job a few microseconds. Claiming only for the
free slots, the slots waited for every claim: two thirds of the time on one PostgreSQL worker process (3.4 ms a
claim of 100 no-op jobs, 1.7 ms their runs). So a worker
also claims ahead `extra` jobs, as many as its slots get through during one claim (how fast its jobs end times how
long its last claim took, at most one per slot), and holds at most its slots plus twice that: the jobs that end
while a claim is under way, and as many again waiting for the slots while the next one is. One claim takes at
most the slots plus `extra`, so that from an empty worker the next claim starts while the slots run what the
first brought. Claimed ahead, a job waits in the worker about one claim's time.

Jobs slower than a claim make `extra` 0: the worker then claims for its free slots only, and a slow job never
waits in one worker while another could start it.
"""

import time
from collections.abc import Callable


class Prefetch:
    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity, self._clock = capacity, clock
        self.extra = 0  # jobs the slots get through during one claim
        self._claim_seconds = 0.0
        self._since = clock()
        self._ended = 0

    def room(self, held: int) -> int:
        """How many more jobs to claim while the worker holds `held` (claimed and not yet ended)."""
        return self.capacity + 2 * self.extra - held

    def batch(self, held: int, ended: int) -> int:
        """How many jobs the next claim asks for; `ended`: how many jobs this worker has ended so far (how fast they
        end since the last claim began sets `extra`)."""
        rate = (ended - self._ended) / max(self._clock() - self._since, 1e-6)
        self.extra = min(self.capacity, int(rate * self._claim_seconds))
        return min(self.room(held), self.capacity + self.extra)

    def claiming(self, ended: int) -> None:
        """A claim begins (one the worker only thought of, having no room, measures nothing)."""
        self._since, self._ended = self._clock(), ended

    def claimed(self) -> None:
        """The claim returned: how long it took sets how far ahead the next one claims."""
        self._claim_seconds = self._clock() - self._since
